"""serving.db: one calling style on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from kequn.errors import ExecutionError
from serving.db import (
    BULK_CACHE_KIB,
    INTEGRITY_ERRORS,
    connect,
    dialect_of,
    qmark_to_pyformat,
    redact,
    utcnow,
)


def test_dialect_and_url_errors():
    assert dialect_of("sqlite:///x.sqlite") == "sqlite"
    assert dialect_of("postgresql://u@h/db") == "postgresql"
    with pytest.raises(ExecutionError, match="mysql://x"):
        connect("mysql://x")
    with pytest.raises(ExecutionError, match="is not sqlite:///PATH"):
        connect("sqlite://relative")


def test_placeholders_outside_quotes_only():
    assert qmark_to_pyformat("SELECT '?', \"a?\" FROM t WHERE x = ? AND y LIKE 'a%' AND z = ?") \
        == "SELECT '?', \"a?\" FROM t WHERE x = %s AND y LIKE 'a%%' AND z = %s"
    assert redact("postgresql://kequn:s3cret@db:5432/x") == "postgresql://kequn:***@db:5432/x"


def test_sqlite_creates_the_folder_and_uses_wal(tmp_path: Path):
    db = connect(f"sqlite:///{tmp_path / 'deep' / 'er' / 's.sqlite'}")
    try:
        assert (tmp_path / "deep" / "er" / "s.sqlite").exists()
        assert db.scalar("PRAGMA journal_mode") == "wal"
        assert db.scalar("PRAGMA foreign_keys") == 1
        assert db.scalar("PRAGMA busy_timeout") >= 1000
    finally:
        db.close()


def test_statements_params_and_types(db):
    db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, d DATE, ts TIMESTAMP, s VARCHAR(20))")
    shanghai = timezone(timedelta(hours=8))
    db.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", [
        (1, date(2024, 3, 1), datetime(2024, 3, 1, 8, 30, tzinfo=shanghai), "50%"),
        (2, date(2024, 3, 2), datetime(2024, 3, 2, 1, 2, 3), "a?b"),
    ])
    rows = db.fetchall("SELECT id, d, ts, s FROM t WHERE s LIKE '%' ORDER BY id")
    assert rows == [
        (1, date(2024, 3, 1), datetime(2024, 3, 1, 0, 30), "50%"),  # stored as UTC
        (2, date(2024, 3, 2), datetime(2024, 3, 2, 1, 2, 3), "a?b"),
    ]
    assert db.fetchone("SELECT s FROM t WHERE id = ?", (2,)) == ("a?b",)
    assert db.fetchone("SELECT s FROM t WHERE id = ?", (9,)) is None
    assert db.scalar("SELECT count(*) FROM t WHERE s = '50%' OR id = ?", (2,)) == 2
    assert abs(utcnow() - datetime.now(UTC).replace(tzinfo=None)) < timedelta(seconds=5)


def test_transaction_commits_or_rolls_back_everything(db):
    db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY)")
    with db.transaction():
        db.execute("INSERT INTO t VALUES (?)", (1,))
    with pytest.raises(INTEGRITY_ERRORS), db.transaction():
        db.execute("INSERT INTO t VALUES (?)", (2,))
        db.execute("INSERT INTO t VALUES (?)", (1,))
    assert db.fetchall("SELECT id FROM t") == [(1,)]
    assert not db.in_transaction


def test_nested_transaction_is_a_savepoint(db):
    db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY)")
    with db.transaction():
        db.execute("INSERT INTO t VALUES (?)", (1,))
        with pytest.raises(INTEGRITY_ERRORS), db.transaction():
            db.execute("INSERT INTO t VALUES (?)", (2,))
            db.execute("INSERT INTO t VALUES (?)", (1,))
        db.execute("INSERT INTO t VALUES (?)", (3,))
    assert sorted(db.fetchall("SELECT id FROM t")) == [(1,), (3,)]


def test_concurrent_writers_serialise(serving_url):
    """Two read-then-write transactions on separate connections never lose an update."""
    setup = connect(serving_url)
    setup.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
    setup.execute("INSERT INTO counter VALUES (1, 0)")
    setup.close()
    errors: list[BaseException] = []

    def bump(times: int) -> None:
        db = connect(serving_url)
        lock = " FOR UPDATE" if db.dialect == "postgresql" else ""
        try:
            for _ in range(times):
                with db.transaction():
                    n = db.scalar(f"SELECT n FROM counter WHERE id = 1{lock}")
                    time.sleep(0.001)
                    db.execute("UPDATE counter SET n = ? WHERE id = 1", (n + 1,))
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=bump, args=(25,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    check = connect(serving_url)
    assert check.scalar("SELECT n FROM counter WHERE id = 1") == 75
    check.close()


def test_serving_schema_is_there(db):
    db.execute("INSERT INTO coupon_eligibility (segment, customer_id, as_of, synced_at) "
               "VALUES (?, ?, ?, ?)", ("vip", 1, date(2024, 3, 1), utcnow()))
    with pytest.raises(INTEGRITY_ERRORS):
        db.execute("INSERT INTO coupon_eligibility (segment, customer_id, as_of, synced_at) "
                   "VALUES (?, ?, ?, ?)", ("vip", 1, date(2024, 3, 2), utcnow()))
    with pytest.raises(INTEGRITY_ERRORS):
        db.execute("INSERT INTO sync_log (sync_id, segment, as_of, status, started_at) "
                   "VALUES (?, ?, ?, ?, ?)", ("x", "vip", date(2024, 3, 1), "weird", utcnow()))
    columns = db.fetchall("SELECT sync_id, segment, as_of, added, removed, unchanged, status, "
                          "reason, started_at, finished_at, definition_hash FROM sync_log")
    assert columns == []


def test_bad_postgres_url_is_a_clear_error():
    with pytest.raises(ExecutionError, match=r"cannot connect to the serving database"):
        connect("postgresql://nobody:pw@127.0.0.1:1/nothing?connect_timeout=2")


def test_bulk_cache_is_large_inside_the_block_and_restored_after(db):
    """SQLite: the page cache grows for a bulk write and shrinks back, also after an
    error; PostgreSQL: nothing to set."""
    if db.dialect != "sqlite":
        with db.bulk_cache():
            assert db.scalar("SELECT 1") == 1
        return
    before = db.scalar("PRAGMA cache_size")
    with db.bulk_cache(kib=65_536):
        assert db.scalar("PRAGMA cache_size") == -65_536
    assert db.scalar("PRAGMA cache_size") == before
    with pytest.raises(RuntimeError), db.bulk_cache():
        assert db.scalar("PRAGMA cache_size") == -BULK_CACHE_KIB
        raise RuntimeError("a failed bulk write")
    assert db.scalar("PRAGMA cache_size") == before
