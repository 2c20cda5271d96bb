"""Retention prunes old snapshots, never one a sync or rule order still refers to."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from app.context import KequnContext
from app.retention import cutoff_day
from dagster_project.definitions import build_defs
from kequn.settings import Settings
from tests.rules.conftest import write_orders

TODAY = date(2026, 3, 31)
DAYS = [TODAY - timedelta(days=n) for n in (0, 1, 89, 90, 120, 150, 200)]
SYNCED_BY_MARKER = ("a", TODAY - timedelta(days=200))
SYNCED_IN_SERVING = ("b", TODAY - timedelta(days=150))
RULE_ORDER_DAY = TODAY - timedelta(days=120)


def _seed(kequn: KequnContext) -> None:
    with kequn.connect_warehouse() as con:
        con.execute("CREATE TABLE tags.customer_tags (as_of DATE, customer_id BIGINT, x INT)")
        con.execute("CREATE TABLE tags._src_loans (as_of DATE, customer_id BIGINT, y INT)")
        for day in DAYS:
            for customer in (1, 2):
                con.execute("INSERT INTO tags.customer_tags VALUES (?, ?, 1)", [day, customer])
                con.execute("INSERT INTO tags._src_loans VALUES (?, ?, 1)", [day, customer])
                for segment in ("a", "b"):
                    con.execute("INSERT INTO segments.members VALUES (?, ?, ?)",
                                [segment, day, customer])
        con.execute("INSERT INTO sync.marker VALUES (?, 's1', ?, 2, 'h', now())",
                    list(SYNCED_BY_MARKER))
    db = kequn.connect_serving()
    try:
        db.execute("INSERT INTO sync_state (segment, sync_id, as_of, members, definition_hash,"
                   " updated_at) VALUES (?, 's2', ?, 2, 'h', ?)",
                   [*SYNCED_IN_SERVING, "2026-01-01 00:00:00"])
        if not db.has_table("rule_orders"):  # the rules engine's table, when installed
            db.execute("CREATE TABLE rule_orders (order_id INTEGER, as_of DATE)")
            db.execute("INSERT INTO rule_orders VALUES (1, ?)", [RULE_ORDER_DAY])
        else:
            write_orders(db, "r", RULE_ORDER_DAY, [(1, "e", "act", "[]", "then", 0)])
    finally:
        db.close()


def test_the_retention_job_prunes_only_unreferred_old_snapshots() -> None:
    kequn = KequnContext(Settings(retention_days=90))
    _seed(kequn)
    defs = build_defs(kequn)
    schedule = defs.resolve_schedule_def("retention_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    result = defs.resolve_job_def("retention").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"prune_old_snapshots": {"config": {"as_of": TODAY.isoformat()}}}})
    assert result.success
    cutoff = cutoff_day(TODAY, 90)
    recent = {d for d in DAYS if d >= cutoff}
    assert recent == {TODAY, TODAY - timedelta(days=1), TODAY - timedelta(days=89)}
    with kequn.connect_warehouse(read_only=True) as con:
        members = set(con.execute("SELECT segment, as_of FROM segments.members").fetchall())
        tag_days = {d for (d,) in con.execute("SELECT DISTINCT as_of FROM tags.customer_tags")
                    .fetchall()}
        src_days = {d for (d,) in con.execute("SELECT DISTINCT as_of FROM tags._src_loans")
                    .fetchall()}
    assert members == {(s, d) for s in "ab" for d in recent} | {
        SYNCED_BY_MARKER, SYNCED_IN_SERVING, ("a", RULE_ORDER_DAY), ("b", RULE_ORDER_DAY)}
    kept_days = recent | {SYNCED_BY_MARKER[1], SYNCED_IN_SERVING[1], RULE_ORDER_DAY}
    assert tag_days == kept_days and src_days == kept_days
    metadata = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT") \
        .event_specific_data.metadata
    # day 90 (both segments), day 150 of a, day 200 of b: two customers each
    assert metadata["deleted/segments.members"].value == 2 * 2 + 2 + 2
