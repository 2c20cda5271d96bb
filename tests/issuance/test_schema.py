"""The issuance tables' rebuilds (issuance/schema.py). Migration 6 (SQLite): the status
checks written as ORs of equalities (kequn.migrations.one_of) refuse what the IN lists
refused, and the rebuild keeps every coupon and history row and the append-only
triggers. Migration 7: the coupons table with a rowid keeps every row, its indexes and
coupon_id as a unique key. Migration 9 (PostgreSQL): the status becomes a domain."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from issuance.schema import ISSUANCE_MIGRATIONS, STREAM, migrate
from issuance.states import STATES
from kequn.migrations import apply_migrations
from serving.db import ServingDB, connect, integrity_errors

AT = datetime(2026, 3, 10, 2)
COUPON = ("INSERT INTO coupons (coupon_id, campaign, customer_id, status, template_kind, "
          "template_value, exclusive, on_failed_drawdown, channels, lease_seconds, issued_at, "
          "issue_day, valid_from, valid_until, loan_id, lease_until, version, updated_at) "
          "VALUES (?, 'c', ?, ?, 'discount', '0.9', 0, 'restore', 'app', 900, ?, ?, ?, ?, ?, "
          "?, 1, ?)")
HISTORY = ("INSERT INTO coupon_history (coupon_id, seq, from_status, to_status, at, loan_id, "
           "reason, request_key) VALUES (?, ?, ?, ?, ?, ?, 'test', NULL)")


def _coupon(db: ServingDB, coupon_id: str, customer: int, status: str) -> None:
    occupied = status == "occupied"
    db.execute(COUPON, (coupon_id, customer, status, AT, date(2026, 3, 10), AT,
                        datetime(2026, 4, 10), "L1" if occupied else None,
                        datetime(2026, 3, 10, 3) if occupied else None, AT))


def _rows(db: ServingDB) -> dict[str, list]:
    return {"coupons": db.fetchall("SELECT * FROM coupons ORDER BY coupon_id"),
            "history": db.fetchall("SELECT * FROM coupon_history ORDER BY coupon_id, seq")}


def _at_version(tmp_path: Path, version: int) -> ServingDB:
    """A SQLite serving database at issuance ``version`` with a coupon in each status
    (inserted in the reverse of coupon-id order)."""
    db = connect(f"sqlite:///{tmp_path / 'serving.sqlite'}")
    apply_migrations(db, STREAM, ISSUANCE_MIGRATIONS[:version])
    for n, status in enumerate(STATES):
        _coupon(db, f"k{9 - n}", 100 + n, status)
    return db


def _coupon_indexes(db: ServingDB) -> set[str]:
    return {n for (n,) in db.fetchall("SELECT name FROM sqlite_master WHERE type = 'index' "
                                      "AND tbl_name = 'coupons' AND sql IS NOT NULL")}


def test_the_sqlite_rebuild_keeps_every_coupon_history_row_and_trigger(tmp_path: Path) -> None:
    db = _at_version(tmp_path, 5)
    try:
        db.execute(HISTORY, ("k8", 2, "unused", "occupied", AT, "L1"))
        db.execute(HISTORY, ("k7", 2, None, "used", AT, None))
        before = _rows(db)
        assert migrate(db)[0] == 6
        assert _rows(db) == before
        tables = dict(db.fetchall("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                                  "AND name IN ('coupons', 'coupon_history')"))
        assert all(" IN (" not in sql for sql in tables.values())
        assert _coupon_indexes(db) == {"coupons_customer", "coupons_loan", "coupons_lease"}
        for statement in ("UPDATE coupon_history SET reason = 'x'", "DELETE FROM coupon_history"):
            with pytest.raises(integrity_errors(), match="append-only"), db.transaction():
                db.execute(statement)
    finally:
        db.close()


def test_the_coupons_table_gets_a_rowid_and_keeps_its_rows_and_key(tmp_path: Path) -> None:
    db = _at_version(tmp_path, 6)
    try:
        before = _rows(db)
        assert migrate(db)[0] == 7
        assert _rows(db) == before
        sql = db.scalar("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'coupons'")
        assert "WITHOUT ROWID" not in str(sql)
        assert db.scalar("SELECT count(*) FROM coupons WHERE rowid IS NOT NULL") == len(STATES)
        assert _coupon_indexes(db) == {"coupons_customer", "coupons_loan", "coupons_lease"}
        plan = " ".join(str(r[-1]) for r in db.fetchall(
            "EXPLAIN QUERY PLAN SELECT status FROM coupons WHERE coupon_id = 'k9'"))
        assert "USING INDEX sqlite_autoindex_coupons" in plan, plan
        with pytest.raises(integrity_errors()), db.transaction():
            _coupon(db, "k9", 1, "unused")  # the coupon id is still the key
        assert _rows(db) == before
    finally:
        db.close()


def test_the_status_checks_refuse_an_unknown_status(db: ServingDB) -> None:
    for n, status in enumerate(STATES):  # every known one is accepted
        _coupon(db, f"k{n}", 100 + n, status)
    db.execute(HISTORY, ("k0", 2, None, "unused", AT, None))
    with pytest.raises(integrity_errors()), db.transaction():
        _coupon(db, "bad", 1, "lost")
    with pytest.raises(integrity_errors()), db.transaction():
        db.execute("UPDATE coupons SET status = 'USED' WHERE coupon_id = 'k0'")
    for from_status, to_status in (("unused", "gone"), ("gone", "used")):
        with pytest.raises(integrity_errors()), db.transaction():
            db.execute(HISTORY, ("k0", 3, from_status, to_status, AT, None))
    assert db.scalar("SELECT count(*) FROM coupons") == len(STATES)


def test_the_postgresql_status_becomes_a_domain_keeping_rows_and_partial_indexes(
        serving_url: str) -> None:
    """Migration 9: coupons.status is the domain coupon_status instead of a table CHECK
    (whose text PostgreSQL parses again at every insert); the rows stay, an unknown status
    is still refused, and the expiry scan still reads the two partial indexes on status."""
    if not serving_url.startswith("postgresql"):
        pytest.skip("the status domain is PostgreSQL's")
    db = connect(serving_url)
    try:
        apply_migrations(db, STREAM, ISSUANCE_MIGRATIONS[:8])
        for n, status in enumerate(STATES):
            _coupon(db, f"k{9 - n}", 100 + n, status)
        before = _rows(db)
        assert migrate(db)[0] == 9
        assert _rows(db) == before
        assert db.scalar("SELECT domain_name FROM information_schema.columns WHERE "
                         "table_schema = current_schema() AND table_name = 'coupons' "
                         "AND column_name = 'status'") == "coupon_status"
        assert db.scalar("SELECT count(*) FROM pg_constraint WHERE contype = 'c' "
                         "AND conrelid = 'coupons'::regclass") == 0
        with pytest.raises(integrity_errors(), match="coupon_status"), db.transaction():
            _coupon(db, "bad", 1, "lost")
        db.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in db.fetchall(
            "EXPLAIN SELECT coupon_id FROM coupons WHERE (status = 'occupied' AND "
            "lease_until <= ?) OR (status = 'unused' AND valid_until <= ?)", (AT, AT)))
        assert "coupons_lease" in plan and "coupons_unused_validity" in plan, plan
        assert _rows(db) == before
    finally:
        db.close()
