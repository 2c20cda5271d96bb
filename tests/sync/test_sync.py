"""The segment sync on SQLite and PostgreSQL: diff, guardrails, ordering, idempotency,
dry runs, recovery and interruption at every checkpoint."""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable
from datetime import date, timedelta

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kequn.errors import ExecutionError
from project.sync import SyncSettings
from serving.db import ServingDB, utcnow
from sync import diff as diff_module
from sync.log import UNFINISHED_REASON, sync_log
from sync.run import CHECKPOINTS, sync_segment
from tests.serving.conftest import eligible, mark_built, set_members
from warehouse import db as wh

D1, D2, D3 = date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)
OPEN = SyncSettings(max_removed_ratio=None)


def tracked(con: duckdb.DuckDBPyConnection, segment: str) -> set[int]:
    rows = con.execute("SELECT customer_id FROM sync.applied WHERE segment = ?", [segment])
    return {int(r[0]) for r in rows.fetchall()}


def state(db: ServingDB, segment: str) -> tuple | None:
    return db.fetchone("SELECT sync_id, as_of, members FROM sync_state WHERE segment = ?",
                       (segment,))


def at(point: str, action: Callable[[], None]) -> Callable[[str], None]:
    """A ``checkpoint`` for :func:`sync_segment` that runs ``action`` at ``point``."""

    def checkpoint(name: str) -> None:
        if name == point:
            action()

    return checkpoint


def test_first_sync_then_delta_then_noop(warehouse, db):
    set_members(warehouse, "vip", D1, range(100))
    first = sync_segment(warehouse, db, "vip", D1, OPEN, definition_hash="h1")
    assert (first.status, first.added, first.removed, first.unchanged) == ("applied", 100, 0, 0)
    assert eligible(db, "vip") == set(range(100))
    assert tracked(warehouse, "vip") == set(range(100))

    set_members(warehouse, "vip", D2, range(60, 130))
    second = sync_segment(warehouse, db, "vip", D2, OPEN, definition_hash="h1")
    assert (second.status, second.added, second.removed, second.unchanged) == (
        "applied", 30, 60, 40)
    assert eligible(db, "vip") == set(range(60, 130))
    assert not second.recovered

    again = sync_segment(warehouse, db, "vip", D2, OPEN, definition_hash="h1")
    assert (again.status, again.added, again.removed, again.unchanged) == ("noop", 0, 0, 70)
    assert eligible(db, "vip") == set(range(60, 130))

    rows = {r["sync_id"]: r for r in sync_log(db, "vip")}
    assert rows[second.sync_id]["status"] == "applied"
    assert (rows[second.sync_id]["added"], rows[second.sync_id]["removed"]) == (30, 60)
    assert rows[second.sync_id]["definition_hash"] == "h1"
    assert rows[again.sync_id]["status"] == "noop"
    assert rows[second.sync_id]["finished_at"] >= rows[second.sync_id]["started_at"]
    assert state(db, "vip")[1:] == (D2, 70)


def test_rows_carry_the_day_they_were_added(warehouse, db):
    set_members(warehouse, "vip", D1, [1, 2])
    sync_segment(warehouse, db, "vip", D1, OPEN)
    set_members(warehouse, "vip", D2, [2, 3])
    sync_segment(warehouse, db, "vip", D2, OPEN)
    rows = db.fetchall("SELECT customer_id, as_of FROM coupon_eligibility WHERE segment = ? "
                       "ORDER BY customer_id", ("vip",))
    assert [(int(c), d) for c, d in rows] == [(2, D1), (3, D2)]


def test_segments_are_independent(warehouse, db):
    set_members(warehouse, "a", D1, [1, 2, 3])
    set_members(warehouse, "b", D1, [3, 4])
    sync_segment(warehouse, db, "a", D1, OPEN)
    sync_segment(warehouse, db, "b", D1, OPEN)
    set_members(warehouse, "a", D2, [1])
    sync_segment(warehouse, db, "a", D2, OPEN)
    assert eligible(db, "a") == {1}
    assert eligible(db, "b") == {3, 4}


def test_newer_day_without_changes_is_noop_and_moves_the_day(warehouse, db):
    set_members(warehouse, "vip", D1, [1, 2])
    set_members(warehouse, "vip", D2, [1, 2])
    sync_segment(warehouse, db, "vip", D1, OPEN)
    result = sync_segment(warehouse, db, "vip", D2, OPEN)
    assert result.status == "noop"
    assert state(db, "vip")[1] == D2
    # D1 is now older than the synced day
    assert sync_segment(warehouse, db, "vip", D1, OPEN).skipped_older


def test_older_day_is_skipped_unless_forced(warehouse, db):
    set_members(warehouse, "vip", D1, range(10))
    set_members(warehouse, "vip", D2, range(5, 15))
    sync_segment(warehouse, db, "vip", D2, OPEN)
    skipped = sync_segment(warehouse, db, "vip", D1, OPEN)
    assert skipped.status == "noop" and skipped.skipped_older and not skipped.ok
    assert "older than the synced snapshot of 2024-03-02" in skipped.reason
    assert eligible(db, "vip") == set(range(5, 15))
    assert sync_log(db, "vip")[0]["status"] == "noop"

    forced = sync_segment(warehouse, db, "vip", D1, OPEN, force=True)
    assert forced.status == "applied" and forced.reason.startswith("forced: older")
    assert eligible(db, "vip") == set(range(10))
    assert state(db, "vip")[1] == D1


@pytest.mark.parametrize(
    ("settings_", "before", "after", "expected"),
    [
        (SyncSettings(max_removed_ratio=0.5), range(100), range(49), "51 of 100 synced members"),
        (SyncSettings(max_removed_ratio=None, max_added_ratio=1.0), range(10), range(21),
         "11 members would be added to 10"),
        (SyncSettings(max_removed_ratio=None, min_size=50), range(100), range(40),
         "the snapshot has 40 members, below min_size 50"),
        (SyncSettings(max_removed_ratio=None), range(5), [], "an empty snapshot would replace 5"),
    ],
    ids=["removed_ratio", "added_ratio", "min_size", "empty_replace"],
)
def test_each_guardrail_blocks_and_applies_nothing(warehouse, db, settings_, before, after,
                                                    expected):
    set_members(warehouse, "vip", D1, before)
    sync_segment(warehouse, db, "vip", D1, OPEN)
    state_before = state(db, "vip")
    set_members(warehouse, "vip", D2, after)

    blocked = sync_segment(warehouse, db, "vip", D2, settings_)
    assert blocked.status == "blocked"
    assert expected in blocked.reason
    assert eligible(db, "vip") == set(before)
    assert state(db, "vip") == state_before
    assert tracked(warehouse, "vip") == set(before)
    row = sync_log(db, "vip")[0]
    assert (row["status"], row["sync_id"]) == ("blocked", blocked.sync_id)
    assert expected in row["reason"]

    forced = sync_segment(warehouse, db, "vip", D2, settings_, force=True)
    assert forced.status == "applied" and forced.reason.startswith("forced: ")
    assert eligible(db, "vip") == set(after)


def test_limits_that_hold_let_the_sync_through(warehouse, db):
    set_members(warehouse, "vip", D1, range(100))
    sync_segment(warehouse, db, "vip", D1, OPEN)
    set_members(warehouse, "vip", D2, range(50, 100))  # exactly 50% removed: allowed
    assert sync_segment(warehouse, db, "vip", D2, SyncSettings()).status == "applied"


def test_empty_replace_allowed_when_configured(warehouse, db):
    set_members(warehouse, "vip", D1, [1, 2])
    sync_segment(warehouse, db, "vip", D1, OPEN)
    set_members(warehouse, "vip", D2, [])
    settings_ = SyncSettings(max_removed_ratio=None, allow_empty_replace=True)
    assert sync_segment(warehouse, db, "vip", D2, settings_).status == "applied"
    assert eligible(db, "vip") == set()


def test_dry_run_writes_nothing(warehouse, db):
    set_members(warehouse, "vip", D1, range(10))
    sync_segment(warehouse, db, "vip", D1, OPEN)
    set_members(warehouse, "vip", D2, range(3, 13))
    log_before = sync_log(db)
    plan = sync_segment(warehouse, db, "vip", D2, OPEN, dry_run=True)
    assert (plan.status, plan.added, plan.removed, plan.unchanged) == ("applied", 3, 3, 7)
    assert plan.sample_added == (10, 11, 12) and plan.sample_removed == (0, 1, 2)
    assert eligible(db, "vip") == set(range(10))
    assert sync_log(db) == log_before
    assert tracked(warehouse, "vip") == set(range(10))
    blocked_plan = sync_segment(warehouse, db, "vip", D2, SyncSettings(max_removed_ratio=0.1),
                                dry_run=True)
    assert blocked_plan.status == "blocked" and sync_log(db) == log_before


def test_dry_run_on_a_read_only_warehouse(warehouse_path, db):
    con = wh.connect(warehouse_path)
    set_members(con, "vip", D1, [7, 8])
    con.close()
    ro = wh.connect(warehouse_path, read_only=True)
    try:
        plan = sync_segment(ro, db, "vip", D1, OPEN, dry_run=True)
    finally:
        ro.close()
    assert (plan.status, plan.added) == ("applied", 2)
    assert eligible(db, "vip") == set()


def test_missing_members_table_is_a_clear_error(tmp_path, db):
    # a file the warehouse migration never ran on (warehouse.db.connect would create the table)
    con = duckdb.connect(str(tmp_path / "empty.duckdb"))
    with pytest.raises(ExecutionError, match=r"no segments\.members table"):
        sync_segment(con, db, "vip", D1, OPEN)
    con.close()


def test_a_warehouse_without_tracking_tables_is_refused_before_anything_is_written(
        tmp_path, db):
    con = duckdb.connect(str(tmp_path / "unmigrated.duckdb"))
    con.execute("CREATE SCHEMA segments")
    con.execute("CREATE TABLE segments.members (segment VARCHAR, as_of DATE, "
                "customer_id BIGINT)")
    con.execute("INSERT INTO segments.members VALUES ('vip', ?, 1)", [D1])
    with pytest.raises(ExecutionError, match=r"no sync\.applied / sync\.marker"):
        sync_segment(con, db, "vip", D1, OPEN)
    assert sync_log(db) == [] and eligible(db, "vip") == set()
    plan = sync_segment(con, db, "vip", D1, OPEN, dry_run=True)  # reads only: fine
    assert (plan.status, plan.added, plan.recovered) == ("applied", 1, False)
    con.close()


def test_duplicate_member_rows_count_once(warehouse, db):
    warehouse.execute("INSERT INTO segments.members VALUES ('vip', ?, 1), ('vip', ?, 1)",
                      [D1, D1])
    mark_built(warehouse, "vip", D1, 1)
    result = sync_segment(warehouse, db, "vip", D1, OPEN)
    assert (result.added, result.target_size) == (1, 1)


def test_converges_when_the_serving_database_is_reset(warehouse, db):
    set_members(warehouse, "vip", D1, range(10))
    sync_segment(warehouse, db, "vip", D1, OPEN)
    with db.transaction():
        db.execute("DELETE FROM coupon_eligibility WHERE segment = ?", ("vip",))
        db.execute("DELETE FROM sync_state WHERE segment = ?", ("vip",))
    result = sync_segment(warehouse, db, "vip", D1, OPEN)
    assert result.recovered and (result.status, result.added) == ("applied", 10)
    assert eligible(db, "vip") == set(range(10))


def test_converges_when_the_warehouse_tracking_is_lost(warehouse, db):
    set_members(warehouse, "vip", D1, range(10))
    sync_segment(warehouse, db, "vip", D1, OPEN)
    warehouse.execute("DELETE FROM sync.applied")
    warehouse.execute("DELETE FROM sync.marker")
    set_members(warehouse, "vip", D2, range(5, 12))
    result = sync_segment(warehouse, db, "vip", D2, OPEN)
    assert result.recovered
    assert (result.added, result.removed, result.unchanged) == (2, 5, 5)
    assert eligible(db, "vip") == set(range(5, 12))
    assert tracked(warehouse, "vip") == set(range(5, 12))
    assert not sync_segment(warehouse, db, "vip", D2, OPEN).recovered


def test_blocked_recovery_still_repairs_the_tracking(warehouse, db):
    set_members(warehouse, "vip", D1, range(10))
    sync_segment(warehouse, db, "vip", D1, OPEN)
    warehouse.execute("DELETE FROM sync.applied")
    warehouse.execute("DELETE FROM sync.marker")
    set_members(warehouse, "vip", D2, [])
    assert sync_segment(warehouse, db, "vip", D2, SyncSettings()).status == "blocked"
    assert tracked(warehouse, "vip") == set(range(10))
    assert not sync_segment(warehouse, db, "vip", D2, SyncSettings()).recovered


class Interrupted(Exception):
    """Raised by a checkpoint hook to stop a sync where a crash would."""


@pytest.mark.parametrize("point", CHECKPOINTS)
def test_interrupted_at_each_checkpoint_holds_old_or_new_and_converges(
        warehouse, db, point):
    set_members(warehouse, "vip", D1, range(0, 100))
    sync_segment(warehouse, db, "vip", D1, OPEN)
    set_members(warehouse, "vip", D2, range(30, 150))

    def stop() -> None:
        raise Interrupted(point)

    with pytest.raises(Interrupted):
        sync_segment(warehouse, db, "vip", D2, OPEN, checkpoint=at(point, stop))

    committed = CHECKPOINTS.index(point) >= CHECKPOINTS.index("after_serving_commit")
    assert eligible(db, "vip") == (set(range(30, 150)) if committed else set(range(100)))
    last = sync_log(db, "vip")[0]
    assert last["status"] == ("applied" if committed else "failed")

    again = sync_segment(warehouse, db, "vip", D2, OPEN)
    assert again.status == ("noop" if committed else "applied")
    assert eligible(db, "vip") == set(range(30, 150))
    assert tracked(warehouse, "vip") == set(range(30, 150))


def test_failure_is_recorded_with_its_reason(warehouse, db):
    set_members(warehouse, "vip", D1, [1])

    def boom() -> None:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        sync_segment(warehouse, db, "vip", D1, OPEN, checkpoint=at("mid_apply", boom))
    row = sync_log(db, "vip")[0]
    assert (row["status"], row["reason"]) == ("failed", "disk on fire")
    assert row["finished_at"] is not None
    assert row["reason"] != UNFINISHED_REASON


def test_a_failure_while_planning_is_logged_as_failed(warehouse, db, monkeypatch):
    set_members(warehouse, "vip", D1, range(10))

    def broken(*args, **kwargs):
        raise RuntimeError("the diff broke")

    monkeypatch.setattr("sync.run.compute_diff", broken)
    with pytest.raises(RuntimeError):
        sync_segment(warehouse, db, "vip", D1, OPEN, definition_hash="h1")
    [row] = sync_log(db, "vip")
    assert (row["status"], row["reason"], row["as_of"]) == ("failed", "the diff broke", D1)
    assert row["finished_at"] is not None and row["started_at"] <= row["finished_at"]
    assert eligible(db, "vip") == set()


def test_a_sync_plans_while_another_writer_holds_the_serving_database(
        warehouse, db, serving_url):
    """A sync's plan (DuckDB's diff, reads of the serving database) does not wait for
    the write lock another writer (a campaign's batch) holds; only its writes do."""
    if not serving_url.startswith("sqlite"):
        pytest.skip("SQLite's one write lock")
    import sqlite3

    from serving.db import connect, sqlite_path

    set_members(warehouse, "vip", D1, range(40))
    writer = sqlite3.connect(sqlite_path(serving_url), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    planned = threading.Event()
    outcome: dict[str, object] = {}

    def run() -> None:
        db = connect(serving_url)
        cur = warehouse.cursor()
        try:
            outcome["result"] = sync_segment(cur, db, "vip", D1, OPEN,
                                              checkpoint=at("diffed", planned.set))
        except BaseException as exc:  # handed to the test's thread
            outcome["error"] = exc
        finally:
            cur.close()
            db.close()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert planned.wait(20), "the plan waited for the serving write lock"
        assert thread.is_alive()  # its writes wait for the lock
    finally:
        writer.execute("COMMIT")
        writer.close()
    thread.join(60)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].status == "applied"


def test_concurrent_syncs_of_one_segment_serialise(warehouse, serving_url):
    from serving.db import connect

    set_members(warehouse, "vip", D1, range(50))
    inside = threading.Event()
    release = threading.Event()

    def hold() -> None:
        inside.set()
        assert release.wait(30)

    results: dict[str, object] = {}

    def run(name: str, timeout: float) -> None:
        db = connect(serving_url)
        cur = warehouse.cursor()
        checkpoint = at("mid_apply", hold) if name == "first" else None
        try:
            results[name] = sync_segment(cur, db, "vip", D1, OPEN, lock_timeout=timeout,
                                         checkpoint=checkpoint)
        except Exception as exc:
            results[name] = exc
        finally:
            cur.close()
            db.close()

    first = threading.Thread(target=run, args=("first", 30), name="first")
    first.start()
    assert inside.wait(30)
    impatient = threading.Thread(target=run, args=("impatient", 0.3), name="impatient")
    impatient.start()
    impatient.join(30)
    assert isinstance(results["impatient"], ExecutionError)
    assert "another sync of segment 'vip' is still running" in str(results["impatient"])
    patient = threading.Thread(target=run, args=("patient", 30), name="patient")
    patient.start()
    release.set()
    first.join(30)
    patient.join(30)
    assert results["first"].status == "applied"  # type: ignore[union-attr]
    assert results["patient"].status == "noop"  # type: ignore[union-attr]
    db = connect(serving_url)
    assert eligible(db, "vip") == set(range(50))
    db.close()


def test_a_change_of_sync_state_under_the_sync_is_refused(warehouse, db):
    set_members(warehouse, "vip", D1, [1, 2])
    sync_segment(warehouse, db, "vip", D1, OPEN)
    set_members(warehouse, "vip", D2, [2, 3])

    def sneak() -> None:
        db.execute("UPDATE sync_state SET sync_id = 'someone-else' WHERE segment = 'vip'")

    with pytest.raises(ExecutionError, match="changed while this sync was planning"):
        sync_segment(warehouse, db, "vip", D2, OPEN, checkpoint=at("diffed", sneak))
    assert eligible(db, "vip") == {1, 2}


def test_large_delta_crosses_chunks(warehouse, db, monkeypatch):
    monkeypatch.setattr(diff_module, "CHUNK", 1000)
    set_members(warehouse, "vip", D1, range(0, 5000))
    sync_segment(warehouse, db, "vip", D1, OPEN)
    set_members(warehouse, "vip", D2, range(2500, 7600))
    result = sync_segment(warehouse, db, "vip", D2, OPEN)
    assert (result.added, result.removed) == (2600, 2500)
    assert eligible(db, "vip") == set(range(2500, 7600))


_segment_names = (f"p{i}" for i in itertools.count())

snapshots = st.lists(
    st.tuples(st.frozensets(st.integers(0, 40), max_size=25),
              st.sampled_from((None, *CHECKPOINTS))),
    min_size=1, max_size=6,
)


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=snapshots)
def test_any_sequence_of_snapshots_and_interruptions_converges(warehouse, db, steps):
    """After any sequence of (possibly interrupted) syncs, eligibility is always the old or
    the new snapshot, and one clean run makes it exactly the last snapshot."""
    segment = next(_segment_names)
    current: frozenset[int] = frozenset()
    day = D1
    for members, interrupt_at in steps:
        day += timedelta(days=1)
        set_members(warehouse, segment, day, members)
        if interrupt_at is None:
            sync_segment(warehouse, db, segment, day, OPEN, force=True)
            current = members
        else:
            def stop() -> None:
                raise Interrupted()

            # a noop never reaches 'mid_apply': then the sync simply completes
            with contextlib.suppress(Interrupted):
                sync_segment(warehouse, db, segment, day, OPEN, force=True,
                             checkpoint=at(interrupt_at, stop))
            assert eligible(db, segment) in (set(current), set(members))
            current = frozenset(eligible(db, segment))
    last_members = steps[-1][0]
    sync_segment(warehouse, db, segment, day, OPEN, force=True)
    assert eligible(db, segment) == set(last_members)
    assert tracked(warehouse, segment) == set(last_members)
    again = sync_segment(warehouse, db, segment, day, OPEN)
    assert again.status == "noop" and not again.recovered


@pytest.mark.parametrize("serving_url", ["sqlite"], indirect=True)
def test_tracking_survives_a_large_first_sync(warehouse, db):
    """Regression: DuckDB 2.0.0 hides a 122,880+ row INSERT that follows an empty INSERT in
    the same transaction; the first sync (empty base) must still be tracked in full."""
    set_members(warehouse, "big", D1, range(0, 260_000, 2))
    sync_segment(warehouse, db, "big", D1, OPEN)
    ((count, low),) = warehouse.execute(
        "SELECT count(*), min(customer_id) FROM sync.applied WHERE segment = 'big'").fetchall()
    assert (count, low) == (130_000, 0)
    set_members(warehouse, "big", D2, range(1, 260_000, 2))
    result = sync_segment(warehouse, db, "big", D2, OPEN)
    assert (result.added, result.removed, result.recovered) == (130_000, 130_000, False)
    assert len(eligible(db, "big")) == 130_000


def test_rows_changed_outside_the_sync_are_repaired_by_the_next_sync(warehouse, db):
    set_members(warehouse, "vip", D1, [1, 2, 3])
    sync_segment(warehouse, db, "vip", D1, OPEN)
    with db.transaction():  # someone edits the table by hand
        db.execute("INSERT INTO coupon_eligibility VALUES (?, ?, ?, ?)",
                   ("vip", 4, D1, utcnow()))
        db.execute("DELETE FROM coupon_eligibility WHERE segment = ? AND customer_id = ?",
                   ("vip", 2))
    set_members(warehouse, "vip", D2, [1, 2, 3, 4])
    repaired = sync_segment(warehouse, db, "vip", D2, OPEN)
    assert (repaired.status, repaired.added, repaired.removed) == ("applied", 1, 0)
    assert repaired.recovered and "drift repaired" in repaired.reason
    assert eligible(db, "vip") == {1, 2, 3, 4}
    assert sync_segment(warehouse, db, "vip", D2, OPEN).status == "noop"


def test_the_serving_fingerprint_is_read_while_the_warehouse_diffs(warehouse, db,
                                                                    monkeypatch):
    """Planning against the tracking, the sync reads the serving table's fingerprint on
    another thread while DuckDB computes the diff: each side waits here for the other
    to have started, which one after the other would never see."""
    set_members(warehouse, "vip", D1, [1, 2, 3])
    sync_segment(warehouse, db, "vip", D1, OPEN)
    set_members(warehouse, "vip", D2, [1, 2, 3, 4])
    started = {"diff": threading.Event(), "fingerprint": threading.Event()}

    def meeting(name: str, other: str, work: Callable) -> Callable:
        def wrapped(*args, **kwargs):
            started[name].set()
            assert started[other].wait(10), f"the {other} did not start during the {name}"
            return work(*args, **kwargs)
        return wrapped

    monkeypatch.setattr("sync.run.compute_diff",
                        meeting("diff", "fingerprint", diff_module.compute_diff))
    monkeypatch.setattr("sync.run.serving_fingerprint",
                        meeting("fingerprint", "diff", diff_module.serving_fingerprint))
    result = sync_segment(warehouse, db, "vip", D2, OPEN)
    assert (result.status, result.added, result.recovered) == ("applied", 1, False)
    assert eligible(db, "vip") == {1, 2, 3, 4}


def test_a_day_the_segments_build_has_not_produced_is_refused(warehouse, db):
    # segments.materializations exists: the warehouse migration creates it
    warehouse.execute("INSERT INTO segments.materializations VALUES "
                      "('vip', ?, 0, 'h', current_timestamp)", [D1])
    assert sync_segment(warehouse, db, "vip", D1, OPEN).status == "noop"  # built, empty
    with pytest.raises(ExecutionError, match="has not been built for 2024-03-02") as exc:
        sync_segment(warehouse, db, "vip", D2, OPEN)
    assert "key:segments/vip" in exc.value.hint
    assert [r["as_of"] for r in sync_log(db, "vip")] == [D1]
