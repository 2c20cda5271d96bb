"""Sync bookkeeping: drift in coupon_eligibility is found and repaired, the log names the
definition that built the snapshot, and a skipped day never records moved rows.
On SQLite and PostgreSQL (the ``db`` fixture)."""

from __future__ import annotations

from datetime import date

import pytest

from project.sync import SyncSettings
from serving.db import utcnow
from sync.log import sync_log
from sync.run import sync_segment
from tests.serving.conftest import eligible, set_members

D1, D2, D3 = date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)
OPEN = SyncSettings(max_removed_ratio=None)


@pytest.mark.parametrize("edit", [
    "DELETE FROM coupon_eligibility WHERE segment = 'vip' AND customer_id = 7",
    "DELETE FROM coupon_eligibility WHERE segment = 'vip'",
    "UPDATE coupon_eligibility SET customer_id = 1000 WHERE segment = 'vip' AND customer_id = 3",
    "INSERT",
])
def test_a_hand_edit_is_found_and_repaired_by_the_next_sync(warehouse, db, edit):
    set_members(warehouse, "vip", D1, range(10))
    sync_segment(warehouse, db, "vip", D1, OPEN)
    with db.transaction():
        if edit == "INSERT":
            db.execute("INSERT INTO coupon_eligibility VALUES (?, ?, ?, ?)",
                       ("vip", 99, D1, utcnow()))
        else:
            db.execute(edit)
    assert eligible(db, "vip") != set(range(10))
    again = sync_segment(warehouse, db, "vip", D1, OPEN)  # same day, same members
    assert again.status == "applied" and again.recovered
    assert "drift repaired: coupon_eligibility held" in again.reason
    assert eligible(db, "vip") == set(range(10))
    row = sync_log(db, "vip")[0]
    assert row["status"] == "applied" and "drift repaired" in row["reason"]
    assert sync_segment(warehouse, db, "vip", D1, OPEN).status == "noop"


def test_sync_log_names_the_definition_that_built_the_snapshot(warehouse, db):
    set_members(warehouse, "vip", D1, range(5))
    warehouse.execute("UPDATE segments.materializations SET definition_hash = 'built-by-v1' "
                      "WHERE segment = 'vip' AND as_of = ?", [D1])
    result = sync_segment(warehouse, db, "vip", D1, OPEN, definition_hash="file-now-v2")
    row = next(r for r in sync_log(db, "vip") if r["sync_id"] == result.sync_id)
    assert row["definition_hash"] == "built-by-v1"
    set_members(warehouse, "vip", D2, range(6))  # built without a recorded hash
    result = sync_segment(warehouse, db, "vip", D2, OPEN, definition_hash="file-now-v2")
    row = next(r for r in sync_log(db, "vip") if r["sync_id"] == result.sync_id)
    assert row["definition_hash"] == "file-now-v2"


@pytest.mark.parametrize("dry_run", [True, False])
def test_an_older_day_is_consistently_a_noop_that_moves_nothing(warehouse, db, dry_run):
    set_members(warehouse, "vip", D1, range(0, 40))
    set_members(warehouse, "vip", D2, range(30, 45))
    sync_segment(warehouse, db, "vip", D2, OPEN)
    result = sync_segment(warehouse, db, "vip", D1, OPEN, dry_run=dry_run)
    assert result.status == "noop" and result.skipped_older
    assert (result.added, result.removed) == (0, 0)
    assert result.sample_added == () and result.sample_removed == ()
    assert "it would add 30 and remove 5" in result.reason
    for row in sync_log(db, "vip"):
        if row["status"] == "noop":
            assert (row["added"], row["removed"]) == (0, 0)
    assert eligible(db, "vip") == set(range(30, 45))


@pytest.mark.postgres
def test_postgres_going_away_mid_sync_is_one_clear_error(warehouse, postgres_url):
    from kequn.errors import ExecutionError
    from serving.db import connect

    db = connect(postgres_url)
    admin = connect(postgres_url)
    try:
        set_members(warehouse, "vip", D1, range(10))
        sync_segment(warehouse, db, "vip", D1, OPEN)
        set_members(warehouse, "vip", D2, range(5, 20))
        pid = db.scalar("SELECT pg_backend_pid()")

        def kill_connection(name: str) -> None:
            if name == "mid_apply":
                admin.execute("SELECT pg_terminate_backend(?)", (pid,))

        with pytest.raises(ExecutionError) as info:
            sync_segment(warehouse, db, "vip", D2, OPEN, checkpoint=kill_connection)
        assert info.value.message.startswith("the serving database went away during the "
                                             "sync of 'vip' for 2024-03-02")
        assert "\n" not in info.value.message
    finally:
        db.close()
        admin.close()
    db = connect(postgres_url)
    try:
        assert eligible(db, "vip") == set(range(10))  # the old rows, untouched
        assert sync_segment(warehouse, db, "vip", D2, OPEN).status == "applied"
        assert eligible(db, "vip") == set(range(5, 20))
    finally:
        db.close()
