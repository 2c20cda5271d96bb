"""Compiling tags: snapshots of the example project's SQL, fusion that never changes a
value, and queries that cannot be fused running on their own."""

from __future__ import annotations

import tempfile
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kequn.generate import GenerateStats
from tags.compile import (
    customer_tags_query,
    group_query,
    plan_groups,
    pretty,
    shape_of,
    tag_query,
)
from tags.load import load_tags
from tags.model import TagProject

DAY = date(2025, 3, 31)


def test_groups_of_the_example_project(project: TagProject) -> None:
    groups = {g.key: g.tags for g in plan_groups(project)}
    assert set(groups) == {"customers", "credit_applications", "loans", "installments_loans"}
    assert "overdue" in groups["installments_loans"]
    assert sum(len(t) for t in groups.values()) == len(project.atomic())


def test_group_sql_snapshots(project: TagProject, snapshot) -> None:
    compiled = {g.key: pretty(group_query(project, g, DAY)) for g in plan_groups(project)}
    assert compiled == snapshot


def test_wide_table_sql_snapshot(project: TagProject, snapshot) -> None:
    assert pretty(customer_tags_query(project, plan_groups(project), DAY)) == snapshot


def test_placeholders_become_day_literals(project: TagProject) -> None:
    sql = pretty(tag_query(project["overdue"], DAY))
    assert "$" not in sql
    assert "i.due_date < CAST('2025-03-31' AS DATE)" in sql
    assert "i.paid_at >= CAST('2025-04-01 00:00:00' AS TIMESTAMP)" in sql


def write_project(root: Path, tags: dict[str, tuple[str, str]]) -> TagProject:
    """Atomic tags in folder 'x' from {name: (value_type, query)}."""
    (root / "x").mkdir(parents=True, exist_ok=True)
    for name, (vtype, body) in tags.items():
        (root / "x" / f"{name}.sql").write_text(
            f"TAG (name {name}, title 't', description 'd', owner 'team:t', category_l1 x, "
            f"category_l2 y, value_type {vtype});\n{body}\n", encoding="utf-8")
    return load_tags(root)


def values(con: duckdb.DuckDBPyConnection, sql: str) -> dict[int, object]:
    return {row[0]: row[1] for row in con.execute(sql).fetchall()}


def normal(value: object) -> object:
    return Decimal(value) if isinstance(value, int) and not isinstance(value, bool) else value


def assert_fusion_is_exact(con: duckdb.DuckDBPyConnection, project: TagProject,
                           day: date) -> None:
    for group in plan_groups(project):
        fused = con.execute(pretty(group_query(project, group, day))).fetchall()
        columns = [d[0] for d in con.description]
        ids = [row[0] for row in fused]
        assert len(ids) == len(set(ids)), "one row per customer"
        for name in group.tags:
            alone = values(con, pretty(tag_query(project[name], day)))
            got = {row[0]: row[columns.index(name)] for row in fused}
            assert set(alone) <= set(got)
            for customer, value in got.items():
                assert normal(value) == normal(alone.get(customer)), (name, customer)


@pytest.mark.parametrize("day", [date(2024, 6, 30), date(2025, 3, 31), date(2025, 6, 30)])
def test_fused_queries_equal_each_tags_own_query(generated: GenerateStats,
                                                 project: TagProject, day: date) -> None:
    with duckdb.connect(str(generated.path), read_only=True) as con:
        assert_fusion_is_exact(con, project, day)


AGGREGATES = ["count(*)", "sum(principal)", "max(principal) - min(principal)",
              "bool_or(status = 'FAILED')", "count_if(settled_at IS NULL)",
              "coalesce(max(term_months), -1)",
              "date_diff('day', CAST(max(applied_at) AS DATE), $as_of)"]
TYPES = {"count(*)": "integer", "sum(principal)": "decimal",
         "max(principal) - min(principal)": "decimal", "bool_or(status = 'FAILED')": "boolean",
         "count_if(settled_at IS NULL)": "integer", "coalesce(max(term_months), -1)": "integer",
         "date_diff('day', CAST(max(applied_at) AS DATE), $as_of)": "integer"}
WHERES = [None, "status = 'FAILED'", "principal > 5000", "disbursed_at < $as_of_end",
          "applied_at >= $as_of - INTERVAL 90 DAY AND applied_at < $as_of_end",
          "term_months = 3"]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(AGGREGATES), st.sampled_from(WHERES)),
                min_size=1, max_size=5),
       st.dates(min_value=date(2024, 1, 1), max_value=date(2025, 7, 5)))
def test_fusion_never_changes_a_value(generated: GenerateStats, specs, day: date) -> None:
    tags = {}
    for i, (agg, where) in enumerate(specs):
        clause = f"WHERE {where}\n" if where else ""
        tags[f"t{i}"] = (TYPES[agg], f"SELECT customer_id, {agg} AS t{i}\nFROM raw.loans\n"
                                     f"{clause}GROUP BY customer_id")
    with tempfile.TemporaryDirectory() as folder:
        project = write_project(Path(folder), tags)
    assert len(plan_groups(project)) == 1
    with duckdb.connect(str(generated.path), read_only=True) as con:
        assert_fusion_is_exact(con, project, day)


def test_row_tags_over_customers_fuse_with_case(generated: GenerateStats,
                                                tmp_path: Path) -> None:
    project = write_project(tmp_path, {
        "app_city": ("string", "SELECT customer_id, city AS app_city FROM raw.customers "
                               "WHERE channel = 'APP'"),
        "reg_days": ("integer", "SELECT customer_id, date_diff('day', CAST(registered_at AS "
                                "DATE), $as_of) AS reg_days FROM raw.customers "
                                "WHERE registered_at < $as_of_end"),
    })
    (group,) = plan_groups(project)
    assert "CASE" in pretty(group_query(project, group, DAY))
    with duckdb.connect(str(generated.path), read_only=True) as con:
        assert_fusion_is_exact(con, project, DAY)


def test_unfusable_queries_run_alone(project: TagProject, tmp_path: Path,
                                     generated: GenerateStats) -> None:
    odd = write_project(tmp_path, {
        "loans_a": ("integer", "SELECT customer_id, count(*) AS loans_a FROM raw.loans "
                               "GROUP BY customer_id"),
        "ranked": ("integer", "SELECT customer_id, max(r) AS ranked FROM (SELECT customer_id, "
                              "row_number() OVER (PARTITION BY customer_id ORDER BY applied_at) "
                              "AS r FROM raw.loans) AS t GROUP BY customer_id"),
        "many": ("integer", "SELECT customer_id, count(*) AS many FROM raw.loans "
                            "GROUP BY customer_id HAVING count(*) > 1"),
    })
    groups = {g.key: g for g in plan_groups(odd)}
    assert set(groups) == {"loans", "tag_ranked", "tag_many"}
    assert not groups["tag_ranked"].fused
    assert shape_of(odd["ranked"].query) is None
    with duckdb.connect(str(generated.path), read_only=True) as con:
        assert_fusion_is_exact(con, odd, DAY)
