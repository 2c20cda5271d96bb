"""Tags as Dagster assets: definitions, subset materialisation, the wide table, blocking checks."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from app.context import KequnContext
from assets.common import DAILY, DUCKDB_POOL
from assets.tags import build_definitions, tag_assets, tag_key
from kequn.settings import REPO_ROOT, Settings
from plan.tags import TagPlan
from warehouse.db import connect

DAY = "2025-03-11"
GENERATED_DAY = "2025-06-30"
pytestmark = pytest.mark.slow


def run(plan: TagPlan, path: Path, selection: list[str] | None = None,
        partition: str = DAY) -> dg.ExecuteInProcessResult:
    keys = [dg.AssetKey(s.split("/")) for s in selection] if selection else None
    return dg.materialize(
        tag_assets(plan), selection=keys, partition_key=partition,
        resources={"kequn": KequnContext(Settings(warehouse=path))},
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {"/".join(e.asset_key.path) for e in result.get_asset_materialization_events()}


def test_definitions_describe_every_tag(plan: TagPlan, snapshot) -> None:
    defs = build_definitions(KequnContext(Settings(project_dir=REPO_ROOT / "sql")))
    specs = {"/".join(s.key.path): s for a in defs.assets for s in a.specs}  # type: ignore[union-attr]
    assert set(specs) == {f"tags/{n}" for n in plan.tags} | {"tags/customer_tags",
                                                                 "tags/catalog"}
    for name, tag in plan.tags.items():
        spec = specs[f"tags/{name}"]
        assert spec.owners == [tag.owner]
        assert spec.group_name == f"tags_{tag.category_l1}"
        assert spec.kinds == {"duckdb", "sql"}
        assert spec.code_version == tag.definition_hash
        assert spec.partitions_def == DAILY
        assert tag.description in (spec.description or "")
    for asset in defs.assets:
        assert asset.op.pool == DUCKDB_POOL  # type: ignore[union-attr]
    summary = sorted(
        ("/".join(s.key.path), s.group_name, tuple(s.owners),
         tuple(sorted("/".join(d.asset_key.path) for d in s.deps)))
        for s in specs.values())
    checks = sorted(f"{'/'.join(c.asset_key.path)}:{c.name}:{c.blocking}"
                    for a in defs.assets for c in a.check_specs)  # type: ignore[union-attr]
    assert {"summary": summary, "checks": checks} == snapshot


def test_a_source_step_fully_then_one_tag_alone(plan: TagPlan, tiny_path: Path) -> None:
    loans = [f"tags/{n}" for n in ("drawn", "loan_count", "active_loan_count",
                                   "outstanding_principal", "last_drawn_days_ago",
                                   "first_drawn_date", "settled_loan_count",
                                   "failed_drawdown")]
    result = run(plan, tiny_path, loans)
    assert result.success
    assert materialized(result) == set(loans)
    drawn = next(e for e in result.get_asset_materialization_events()
                 if e.asset_key == tag_key("drawn")).materialization.metadata
    assert drawn["dagster/row_count"].value == 3
    assert drawn["coverage"].value == 3
    assert drawn["coverage_ratio"].value == 0.75
    assert "FROM raw.loans" in drawn["sql"].value
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 3 * len(loans) and all(e.passed for e in evaluations)

    con = connect(tiny_path)
    before = con.execute("SELECT * EXCLUDE (drawn) FROM tags._src_loans "
                         "ORDER BY customer_id").fetchall()
    con.close()
    alone = run(plan, tiny_path, ["tags/drawn"])
    assert alone.success and materialized(alone) == {"tags/drawn"}
    con = connect(tiny_path)
    assert con.execute("SELECT * EXCLUDE (drawn) FROM tags._src_loans "
                       "ORDER BY customer_id").fetchall() == before
    con.close()


def test_everything_builds_the_wide_table_and_catalog(plan: TagPlan,
                                                      generated_copy) -> None:
    path = generated_copy()
    result = run(plan, path, partition=GENERATED_DAY)
    assert result.success
    assert materialized(result) == {f"tags/{n}" for n in plan.tags} | {
        "tags/customer_tags", "tags/catalog"}
    assert all(e.passed for e in result.get_asset_check_evaluations())
    con = connect(path, read_only=True)
    customers = con.execute("SELECT count(*) FROM raw.customers WHERE registered_at < "
                            "TIMESTAMP '2025-07-01'").fetchone()[0]
    assert con.execute("SELECT count(*) FROM tags.customer_tags").fetchone()[0] == customers
    assert con.execute("SELECT count(*) FROM tags.catalog").fetchone()[0] == len(plan.tags)
    kind, coverage = con.execute("SELECT kind, coverage FROM tags.catalog "
                                 "WHERE name = 'granted_not_drawn'").fetchone()
    assert kind == "derived" and coverage == con.execute(
        "SELECT count(*) FROM tags.customer_tags WHERE granted_not_drawn").fetchone()[0]
    con.close()
    wide = next(e for e in result.get_asset_materialization_events()
                if e.asset_key == dg.AssetKey(["tags", "customer_tags"]))
    assert wide.materialization.metadata["dagster/row_count"].value == customers


def test_a_failing_blocking_check_stops_the_wide_table(plan: TagPlan,
                                                        generated_copy) -> None:
    path = generated_copy()
    con = connect(path)
    con.execute("UPDATE raw.customers SET channel = 'FAX' WHERE customer_id = 2")
    con.close()
    result = run(plan, path, partition=GENERATED_DAY)
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [(e.asset_key, e.check_name) for e in failed] == [
        (tag_key("channel"), "values_in_domain")]
    assert "FAX" in (failed[0].description or "")
    done = materialized(result)
    assert "tags/channel" in done and "tags/customer_tags" not in done

