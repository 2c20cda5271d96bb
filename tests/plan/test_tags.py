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

from generate import GenerateStats
from kequn.errors import raise_collected
from plan.params import day_values, query
from plan.tags import (
    TagPlan,
    bitmap_fits,
    compile_tags,
    distinct_ids,
    pretty,
    shape_of,
    tag_query,
)
from project.loader import load_project

DAY = date(2025, 3, 31)


def test_groups_of_the_example_project(plan: TagPlan) -> None:
    groups = {g.key: g.tags for g in plan.groups}
    assert set(groups) == {"customers", "credit_applications", "loans", "installments_loans"}
    assert "overdue" in groups["installments_loans"]
    assert sum(len(t) for t in groups.values()) == sum(
        1 for t in plan.tags.values() if t.kind == "atomic")


def test_only_grouped_fused_queries_are_unique_by_construction(plan: TagPlan,
                                                               tmp_path: Path) -> None:
    unique = {g.key: plan.unique_by_construction(g) for g in plan.groups}
    # aggregates grouped by customer_id; the row tags over raw.customers count distinct ids
    assert unique == {"customers": False, "credit_applications": True, "loans": True,
                      "installments_loans": True}
    alone = write_project(tmp_path / "tags", {
        "dup": ("integer", "SELECT customer_id, 1 AS dup FROM raw.loans")})
    assert [alone.unique_by_construction(g) for g in alone.groups] == [False]


def test_group_sql_snapshots(plan: TagPlan, snapshot) -> None:
    compiled = {g.key: pretty(plan.group_query(g)) for g in plan.groups}
    assert compiled == snapshot


def test_wide_table_sql_snapshot(plan: TagPlan, snapshot) -> None:
    assert pretty(plan.customer_tags_query) == snapshot


def test_the_days_one_query_computes_only_what_is_asked(plan: TagPlan, snapshot) -> None:
    from sqlglot import exp

    def joined(select: exp.Select) -> list[str]:
        return [j.this.alias for j in select.args.get("joins") or []]

    whole = plan.wide_query()
    assert pretty(whole) == snapshot
    # every stored source by its fused scan; nothing read back from the wide table
    assert joined(whole) == [f"g{i}" for i, g in enumerate(plan.groups) if not g.inline]
    assert "customer_tags" not in whole.sql("duckdb")
    one = plan.wide_query(["drawn"])
    loans = next(i for i, g in enumerate(plan.groups) if g.key == "loans")
    assert joined(one) == [f"g{loans}", "w"]  # drawn computed, the rest kept
    assert one.sql("duckdb").count("FROM raw.loans") == 1
    assert plan.wide_query(["drawn"]) is one  # compiled once per subset
    assert joined(plan.wide_query([])) == ["w"]


def test_the_day_is_a_parameter_never_a_literal(plan: TagPlan) -> None:
    compiled = [query(plan.group_query(g)) for g in plan.groups]
    compiled += [query(plan.customer_tags_query), query(plan.wide_query()),
                 query(plan.wide_query(["drawn"]))]
    assert all(q.params for q in compiled)
    assert not any("2025" in q.sql or "CAST('20" in q.sql for q in compiled)
    overdue = query(tag_query(plan.tags["overdue"]))
    assert "i.due_date < $as_of" in overdue.sql and "i.paid_at >= $as_of_end" in overdue.sql
    assert overdue.bind(day_values(DAY)) == {"as_of": DAY, "as_of_end": day_values(DAY)[
        "as_of_end"]}


def run(con: duckdb.DuckDBPyConnection, node, day: date) -> duckdb.DuckDBPyConnection:
    """Execute a compiled query for ``day``."""
    statement = query(node)
    return con.execute(statement.sql, statement.bind(day_values(day)))


def write_project(root: Path, tags: dict[str, tuple[str, str]]) -> TagPlan:
    """Atomic tags in folder 'x' from {name: (value_type, query)}."""
    (root / "x").mkdir(parents=True, exist_ok=True)
    for name, (vtype, body) in tags.items():
        (root / "x" / f"{name}.sql").write_text(
            f"TAG (name {name}, title 't', description 'd', owner 'team:t', category_l1 x, "
            f"category_l2 y, value_type {vtype});\n{body}\n", encoding="utf-8")
    project = load_project(root.parent, folders={"tag": root})
    raise_collected(project.problems("tag"))
    return compile_tags(project.tags)


def values(con: duckdb.DuckDBPyConnection, node, day: date) -> dict[int, object]:
    return {row[0]: row[1] for row in run(con, node, day).fetchall()}


def normal(value: object) -> object:
    return Decimal(value) if isinstance(value, int) and not isinstance(value, bool) else value


def assert_fusion_is_exact(con: duckdb.DuckDBPyConnection, plan: TagPlan,
                           day: date) -> None:
    for group in plan.groups:
        cursor = run(con, plan.group_query(group), day)
        fused = cursor.fetchall()
        columns = [d[0] for d in cursor.description]
        ids = [row[0] for row in fused]
        assert len(ids) == len(set(ids)), "one row per customer"
        for name in group.tags:
            alone = values(con, tag_query(plan.tags[name]), day)
            got = {row[0]: row[columns.index(name)] for row in fused}
            assert set(alone) <= set(got)
            for customer, value in got.items():
                assert normal(value) == normal(alone.get(customer)), (name, customer)


@pytest.mark.parametrize("day", [date(2024, 6, 30), date(2025, 3, 31), date(2025, 6, 30)])
def test_fused_queries_equal_each_tags_own_query(generated: GenerateStats,
                                                 plan: TagPlan, day: date) -> None:
    with duckdb.connect(str(generated.path), read_only=True) as con:
        assert_fusion_is_exact(con, plan, day)


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
          "term_months = 3",
          # terms shared with those above: the pre-filter absorbs the longer conditions
          "disbursed_at < $as_of_end AND principal > 5000",
          "status = 'FAILED' AND (settled_at IS NULL OR term_months = 3)"]


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
        compiled = write_project(Path(folder) / "tags", tags)
    assert len(compiled.groups) == 1
    with duckdb.connect(str(generated.path), read_only=True) as con:
        assert_fusion_is_exact(con, compiled, day)


def test_a_fused_scan_reads_a_condition_implied_by_another_once(generated: GenerateStats,
                                                                tmp_path: Path) -> None:
    wheres = {"drawn_n": "disbursed_at < $as_of_end",
              "open_n": "disbursed_at < $as_of_end AND (settled_at IS NULL OR "
                        "settled_at >= $as_of_end)",
              "failed_n": "status = 'FAILED'"}
    compiled = write_project(tmp_path / "tags", {
        name: ("integer", f"SELECT customer_id, count(*) AS {name} FROM raw.loans "
                          f"WHERE {where} GROUP BY customer_id")
        for name, where in wheres.items()})
    (group,) = compiled.groups
    where = compiled.group_query(group).args["where"].this
    # (A) OR (A AND B) OR (C) scans as A OR C; each tag keeps its own FILTER
    assert " ".join(where.sql(dialect="duckdb").split()) == (
        "(disbursed_at < $as_of_end) OR (status = 'FAILED')")
    assert "settled_at IS NULL" in pretty(compiled.group_query(group))
    with duckdb.connect(str(generated.path), read_only=True) as con:
        for day in (DAY, date(2024, 6, 30)):
            assert_fusion_is_exact(con, compiled, day)


def test_row_tags_over_customers_fuse_with_case(generated: GenerateStats,
                                                tmp_path: Path) -> None:
    compiled = write_project(tmp_path / "tags", {
        "app_city": ("string", "SELECT customer_id, city AS app_city FROM raw.customers "
                               "WHERE channel = 'APP'"),
        "reg_days": ("integer", "SELECT customer_id, date_diff('day', CAST(registered_at AS "
                                "DATE), $as_of) AS reg_days FROM raw.customers "
                                "WHERE registered_at < $as_of_end"),
    })
    (group,) = compiled.groups
    assert "CASE" in pretty(compiled.group_query(group))
    with duckdb.connect(str(generated.path), read_only=True) as con:
        assert_fusion_is_exact(con, compiled, DAY)


def test_unfusable_queries_run_alone(tmp_path: Path, generated: GenerateStats) -> None:
    odd = write_project(tmp_path / "tags", {
        "loans_a": ("integer", "SELECT customer_id, count(*) AS loans_a FROM raw.loans "
                               "GROUP BY customer_id"),
        "ranked": ("integer", "SELECT customer_id, max(r) AS ranked FROM (SELECT customer_id, "
                              "row_number() OVER (PARTITION BY customer_id ORDER BY applied_at) "
                              "AS r FROM raw.loans) AS t GROUP BY customer_id"),
        "many": ("integer", "SELECT customer_id, count(*) AS many FROM raw.loans "
                            "GROUP BY customer_id HAVING count(*) > 1"),
    })
    groups = {g.key: g for g in odd.groups}
    assert set(groups) == {"loans", "tag_ranked", "tag_many"}
    assert not groups["tag_ranked"].fused
    assert shape_of(odd.tags["ranked"].query) is None
    with duckdb.connect(str(generated.path), read_only=True) as con:
        assert_fusion_is_exact(con, odd, DAY)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.integers(-20, 200), st.integers(-2 ** 40, 2 ** 40)), max_size=40),
       st.integers(0, 3))
def test_distinct_ids_by_bitmap_equal_count_distinct(ids: list[int], nulls: int) -> None:
    from sqlglot import exp

    con = duckdb.connect()
    con.execute("CREATE TABLE t (customer_id BIGINT)")
    rows = [(i,) for i in ids] + [(None,)] * nulls
    if rows:
        con.executemany("INSERT INTO t VALUES (?)", rows)
    expected = len(set(ids))
    bounds = (min(ids), max(ids)) if ids else None

    def count(node: exp.Expression) -> int:
        return con.execute(exp.select(node).from_("t").sql("duckdb")).fetchone()[0]

    assert count(distinct_ids()) == expected
    if bitmap_fits(bounds, len(rows)):
        assert count(distinct_ids(bounds)) == expected
    con.close()


def test_a_bitmap_is_used_only_when_small() -> None:
    assert bitmap_fits((1, 10_000_000), 10_000_000)
    assert bitmap_fits((5, 60_000), 1)  # a small span always fits
    assert not bitmap_fits((0, 2 ** 40), 10) and not bitmap_fits(None, 10)
    assert not bitmap_fits((0, 2 ** 31), 2 ** 30)  # never above 2^30 bits
