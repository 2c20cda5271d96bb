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


def test_definitions_are_one_subsettable_step(plan: TagPlan) -> None:
    (asset,) = tag_assets(plan)
    assert asset.can_subset and len(asset.keys) == len(plan.tags) + 2


def test_a_source_fully_then_one_tag_alone(plan: TagPlan, tiny_path: Path) -> None:
    loans = [f"tags/{n}" for n in ("drawn", "loan_count", "active_loan_count",
                                   "outstanding_principal", "last_drawn_days_ago",
                                   "first_drawn_date", "settled_loan_count",
                                   "failed_drawdown")]
    result = run(plan, tiny_path, loans)
    assert result.success
    assert materialized(result) == set(loans)
    drawn = next(e for e in result.get_asset_materialization_events()
                 if e.asset_key == tag_key("drawn")).materialization.metadata
    assert drawn["dagster/row_count"].value == 4  # every registered customer: default false
    assert drawn["coverage"].value == 3
    assert drawn["coverage_ratio"].value == 0.75
    assert "FROM raw.loans" in drawn["sql"].value
    # the day's distribution is on each materialisation; a tag of the written day that
    # was not materialised (the others, kept or recomputed) shows it as an observation
    records = [r.data for r in drawn["distribution"].value.records]
    assert {r["value"]: r["customers"] for r in records} == {"true": 3, "false": 1}
    observed = {"/".join(e.asset_key.path) for e in result.get_asset_observation_events()}
    assert observed == {f"tags/{n}" for n in plan.built} - set(loans)
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 3 * len(loans) and all(e.passed for e in evaluations)

    con = connect(tiny_path)
    atomic = [n for n, t in plan.tags.items() if t.kind == "atomic" and n != "drawn"]
    kept = f"SELECT customer_id, {', '.join(atomic)} FROM tags.customer_tags ORDER BY 1"
    before = con.execute(kept).fetchall()
    con.execute("UPDATE raw.loans SET disbursed_at = NULL WHERE customer_id = 1")
    con.close()
    alone = run(plan, tiny_path, ["tags/drawn"])
    assert alone.success and materialized(alone) == {"tags/drawn"}
    con = connect(tiny_path)
    assert con.execute(kept).fetchall() == before  # the other tags' stored values
    assert con.execute("SELECT drawn FROM tags.customer_tags WHERE customer_id = 1"
                       ).fetchone() == (False,)
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


def test_a_failing_blocking_check_stops_what_reads_the_tags(plan: TagPlan,
                                                           generated_copy) -> None:
    path = generated_copy()
    con = connect(path)
    con.execute("UPDATE raw.customers SET channel = 'FAX' WHERE customer_id = 2")
    con.close()
    ran = []

    @dg.asset(deps=[dg.AssetKey(["tags", "customer_tags"])], partitions_def=DAILY)
    def reads_the_tags() -> None:
        ran.append(True)

    result = dg.materialize(
        [*tag_assets(plan), reads_the_tags], partition_key=GENERATED_DAY,
        resources={"kequn": KequnContext(Settings(warehouse=path))},
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [(e.asset_key, e.check_name) for e in failed] == [
        (tag_key("channel"), "values_in_domain")]
    assert "FAX" in (failed[0].description or "")
    assert "tags/channel" in materialized(result) and not ran


def test_a_tag_whose_query_fails_breaks_only_itself(plan: TagPlan, tiny_path: Path,
                                                    tmp_path: Path) -> None:
    from plan import compile_project
    from project.loader import load_project

    folder = tmp_path / "project" / "tags" / "loans"
    folder.mkdir(parents=True)
    for name in ("drawn", "loan_count"):
        src = plan.tags[name].path.read_text(encoding="utf-8")
        if name == "loan_count":
            src = src.replace("count(*)", "count(no_such_column)")
        (folder / f"{name}.sql").write_text(src, encoding="utf-8")
    broken = compile_project(load_project(tmp_path / "project")).tags
    result = run(broken, tiny_path)
    assert not result.success
    assert materialized(result) == {"tags/drawn", "tags/customer_tags", "tags/catalog"}
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "loan_count.sql" in str(failure) and "running tag(s) loan_count failed" in str(
        failure)


def test_checks_of_a_tag_not_rebuilt_check_its_stored_values(plan: TagPlan,
                                                              tiny_path: Path) -> None:
    assert run(plan, tiny_path, ["tags/loan_count"]).success
    con = connect(tiny_path)
    con.execute("UPDATE tags.customer_tags SET loan_count = -3 WHERE customer_id = 1")
    con.close()
    job = dg.define_asset_job(
        "drawn_and_loan_count_checks", partitions_def=DAILY,
        selection=dg.AssetSelection.assets(tag_key("drawn")).without_checks()
        | dg.AssetSelection.checks_for_assets(tag_key("loan_count")))
    defs = dg.Definitions(assets=tag_assets(plan), jobs=[job], resources={
        "kequn": KequnContext(Settings(warehouse=tiny_path))})
    result = defs.resolve_job_def(job.name).execute_in_process(
        partition_key=DAY, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert materialized(result) == {"tags/drawn"}
    assert {(e.asset_key, e.check_name): e.passed
            for e in result.get_asset_check_evaluations()} == {
        (tag_key("loan_count"), "one_row_per_customer"): True,
        (tag_key("loan_count"), "values_in_domain"): False,  # the stored -3, kept
        (tag_key("loan_count"), "coverage_stable"): True}
    con = connect(tiny_path)
    assert con.execute("SELECT loan_count FROM tags.customer_tags WHERE customer_id = 1"
                       ).fetchone() == (-3,)
    con.close()
