"""Each segment kind end to end through Dagster on a small generated warehouse."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

import assets.segments as seg_assets
from app.context import KequnContext
from assets.common import DAILY, DUCKDB_POOL
from generate.phones import phone_for
from kequn.settings import REPO_ROOT, Settings
from project.combine import render
from project.loader import load_project
from tests.segments.conftest import DAY1, DAY2, GEN_SEED, SEGMENTS_DIR, write

pytestmark = pytest.mark.slow


def members(path: Path, segment: str, day: date) -> set[int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {r[0] for r in con.execute("SELECT customer_id FROM segments.members WHERE "
                                          "segment = ? AND as_of = ?", [segment, day]).fetchall()}
    finally:
        con.close()


def wide_rows(path: Path, day: date) -> list[dict]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        cursor = con.execute("SELECT * FROM tags.customer_tags WHERE as_of = ?", [day])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        con.close()


@pytest.mark.parametrize("day", [DAY1, DAY2])
def test_rule_segments_equal_an_independent_filter_of_the_wide_table(built: Path,
                                                                      day: date) -> None:
    rows = wide_rows(built, day)
    wake_up = {r["customer_id"] for r in rows if r["granted_not_drawn"] is True
               and r["overdue"] is False and r["registered_days"] is not None
               and r["registered_days"] >= 30}
    overdue_now = {r["customer_id"] for r in rows if r["overdue"] is True
                   and r["overdue_days"] is not None and 1 <= r["overdue_days"] <= 90
                   and r["customer_type"] in ("NORMAL", "H5_REFERRAL")}
    assert wake_up and overdue_now
    assert members(built, "wake_up", day) == wake_up
    assert members(built, "overdue_now", day) == overdue_now


def test_sql_segment_matches_python_over_raw_loans(built: Path) -> None:
    con = duckdb.connect(str(built), read_only=True)
    try:
        loans = con.execute("SELECT customer_id, principal, disbursed_at FROM raw.loans").fetchall()
    finally:
        con.close()
    totals: dict[int, list] = {}
    for customer, principal, disbursed in loans:
        if disbursed is not None and disbursed.date() <= DAY2:
            totals.setdefault(customer, []).append(principal)
    expected = {c for c, ps in totals.items() if len(ps) >= 2 and sum(ps) >= 20000}
    assert expected and members(built, "repeat_big_borrowers", DAY2) == expected


def test_file_segment_matches_the_sample_phone_list(built: Path) -> None:
    ids = {cid for cid in range(3, 1000, 5)}
    assert all(phone_for(c, GEN_SEED) for c in ids)
    assert members(built, "vip_list", DAY2) == ids == members(built, "vip_list", DAY1)


def test_combine_segment_equals_set_algebra_of_its_inputs(built: Path) -> None:
    project = load_project(SEGMENTS_DIR.parent)
    assert render(project.segments["wake_up_campaign"].combine) == \
        "(wake_up UNION vip_list) EXCEPT overdue_now"
    for day in (DAY1, DAY2):
        expected = (members(built, "wake_up", day) | members(built, "vip_list", day)) \
            - members(built, "overdue_now", day)
        assert members(built, "wake_up_campaign", day) == expected


def test_members_are_unique_and_materialisations_logged(built: Path) -> None:
    con = duckdb.connect(str(built), read_only=True)
    try:
        dupes = con.execute("SELECT count(*) FROM (SELECT segment, as_of, customer_id FROM "
                            "segments.members GROUP BY ALL HAVING count(*) > 1)").fetchone()[0]
        logged = con.execute("SELECT count(*) FROM segments.materializations").fetchone()[0]
    finally:
        con.close()
    assert dupes == 0 and logged == 2 * len(load_project(SEGMENTS_DIR.parent).segments)


def test_asset_specs_lineage_owners_and_checks() -> None:
    settings = Settings(project_dir=REPO_ROOT / "sql")
    defs = seg_assets.build_definitions(KequnContext(settings))
    specs = {s.key.to_user_string(): s for a in defs.assets for s in a.specs}
    wake_up = specs["segments/wake_up"]
    assert {d.asset_key.to_user_string() for d in wake_up.deps} == {
        "tags/granted_not_drawn", "tags/overdue", "tags/registered_days", "tags/customer_tags"}
    assert wake_up.owners == ["team:growth"]
    assert wake_up.partitions_def == DAILY
    assert wake_up.kinds == {"duckdb", "sql"}
    assert wake_up.code_version and wake_up.group_name == "segments"
    assert {d.asset_key.to_user_string() for d in specs["segments/wake_up_campaign"].deps} == {
        "segments/wake_up", "segments/vip_list", "segments/overdue_now"}
    assert {d.asset_key.to_user_string() for d in specs["segments/repeat_big_borrowers"].deps} \
        == {"raw/loans"}
    assets_def = next(a for a in defs.assets if a.key == wake_up.key)
    assert assets_def.op.pool == DUCKDB_POOL
    checks = {c.name: c for c in assets_def.check_specs}
    assert set(checks) == {"size_bounds", "day_over_day_change"}
    assert all(c.blocking for c in checks.values())


def _run(path: Path, project_dir: Path, day: date, *names: str):
    kequn = KequnContext(Settings(warehouse=path, project_dir=project_dir))
    defs = seg_assets.build_definitions(kequn)
    chosen = [a for a in defs.assets if a.key.path[-1] in names]
    return dg.materialize(chosen, resources={"kequn": kequn},
                          partition_key=day.isoformat(), instance=dg.DagsterInstance.ephemeral(),
                          raise_on_error=False)


def _checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_metadata_and_checks_catch_an_empty_and_a_collapsed_segment(
        built_copy: Callable[[], Path], tmp_path: Path) -> None:
    path = built_copy()
    project = tmp_path / "project"
    project.mkdir()
    (project / "tags").symlink_to(REPO_ROOT / "sql" / "tags")
    write(project / "segments" / "big.sql", "SEGMENT (name big, kind rule, owner 'team:a', "
          "rule 'registered_days >= 0');\n")
    ok = _run(path, project, DAY1, "big")
    assert ok.success and _checks(ok) == {"size_bounds": True, "day_over_day_change": True}
    event = ok.get_asset_materialization_events()[0]
    metadata = event.step_materialization_data.materialization.metadata
    assert metadata["size"].value > 100 and "compiled_sql" in metadata
    assert len(metadata["sample_ids"].value) == 10
    # the next day the rule collapses to a handful of customers: the change guard fails
    write(project / "segments" / "big.sql", "SEGMENT (name big, kind rule, owner 'team:a', "
          "rule 'registered_days >= 0 AND overdue_days > 60');\n")
    collapsed = _run(path, project, DAY2, "big")
    assert _checks(collapsed)["day_over_day_change"] is False
    assert not collapsed.success  # blocking check fails the run
    metadata = collapsed.get_asset_materialization_events()[0] \
        .step_materialization_data.materialization.metadata
    assert metadata["removed"].value > 0
    # an empty segment fails the size check
    write(project / "segments" / "big.sql", "SEGMENT (name big, kind rule, owner 'team:a', "
          "rule 'registered_days < 0');\n")
    empty = _run(path, project, DAY2, "big")
    assert _checks(empty)["size_bounds"] is False and not empty.success


def test_sql_segment_rejected_by_the_gate_is_a_failing_asset(tmp_path: Path) -> None:
    project = tmp_path / "project"
    write(project / "segments" / "evil.sql", "SEGMENT (name evil, kind sql, owner 'team:a');\n"
          "SELECT customer_id FROM read_csv('/etc/passwd')\n")
    defs = seg_assets.build_definitions(KequnContext(Settings(project_dir=project)))
    (evil,) = defs.assets
    assert "evil.sql:2:25: table function read_csv()" in (evil.specs_by_key[
        dg.AssetKey(["segments", "evil"])].description or "")
    result = dg.materialize([evil], partition_key=DAY1.isoformat(), raise_on_error=False,
                            instance=dg.DagsterInstance.ephemeral())
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "evil.sql:2:25: table function read_csv()" in failure.step_failure_data.error.message
