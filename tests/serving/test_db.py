"""serving.db: one calling style on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum, StrEnum
from pathlib import Path

import psycopg
import pytest

from kequn.errors import ExecutionError
from serving.db import (
    BULK_CACHE_KIB,
    connect,
    connection_errors,
    dialect_of,
    integrity_errors,
    kept_open,
    pg_text,
    qmark_to_numbered,
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
    assert qmark_to_numbered("SELECT '?', \"a?\" FROM t WHERE x = ? AND y LIKE 'a%' AND z = ?") \
        == "SELECT '?', \"a?\" FROM t WHERE x = $1 AND y LIKE 'a%' AND z = $2"
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
    with pytest.raises(integrity_errors()), db.transaction():
        db.execute("INSERT INTO t VALUES (?)", (2,))
        db.execute("INSERT INTO t VALUES (?)", (1,))
    assert db.fetchall("SELECT id FROM t") == [(1,)]
    assert not db.in_transaction


def test_nested_transaction_is_a_savepoint(db):
    db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY)")
    with db.transaction():
        db.execute("INSERT INTO t VALUES (?)", (1,))
        with pytest.raises(integrity_errors()), db.transaction():
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
    with pytest.raises(integrity_errors()):
        db.execute("INSERT INTO coupon_eligibility (segment, customer_id, as_of, synced_at) "
                   "VALUES (?, ?, ?, ?)", ("vip", 1, date(2024, 3, 2), utcnow()))
    with pytest.raises(integrity_errors()):
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


def _postgres_only(db) -> None:
    if db.dialect != "postgresql":
        with pytest.raises(ValueError, match="for PostgreSQL"):
            db.fetchone_prepared("q", "SELECT 1", ())
        pytest.skip("fetchone_prepared is PostgreSQL's")


def test_a_prepared_call_binds_every_type_and_reads_text(db):
    """Each value is bound in PostgreSQL's text form (an aware datetime as UTC); the
    columns come back as PostgreSQL prints them."""
    _postgres_only(db)
    shanghai = timezone(timedelta(hours=8))
    sql = ("SELECT ?::int8, ?::boolean, ?::boolean, ?::text, ?::date, ?::timestamp, "
           "?::timestamp, ?::numeric, ?::int4, 'it''s ?'")
    params = (2**40, True, False, "o'brien; DROP TABLE t --", date(2024, 3, 1),
              datetime(2024, 3, 1, 8, 30, 0, 123456, tzinfo=shanghai),
              datetime(2024, 3, 2, 1, 2, 3), Decimal("12.3400"), None)
    text = db.fetchone_prepared("types", sql, params)
    assert text == ("1099511627776", "t", "f", "o'brien; DROP TABLE t --", "2024-03-01",
                    "2024-03-01 00:30:00.123456", "2024-03-02 01:02:03", "12.3400", None,
                    "it's ?")
    assert db.fetchone_prepared("none", "SELECT 1 WHERE ?::int4 = 2", (1,)) is None

    class Channel(StrEnum):
        SMS = "sms"

    class Kind(str, Enum):  # noqa: UP042 (the str mix-in whose str() is not its value)
        DAYS = "interest_free_days"

    assert db.fetchone_prepared("more", "SELECT ?::text, ?::text, ?::float8, ?::float8",
                                (Channel.SMS, Kind.DAYS, 0.1, float("inf"))) \
        == ("sms", "interest_free_days", "0.1", "Infinity")
    # bytes are a value's text form already (encoded once by pg_text), sent as they are
    assert db.fetchone_prepared("more", "SELECT ?::text, ?::text, ?::float8, ?::float8",
                                (pg_text("o'brien"), b"2024-03-01", pg_text(2.5), b"1e3")) \
        == ("o'brien", "2024-03-01", "2.5", "1000")
    with pytest.raises(TypeError, match="cannot send a list"):
        db.fetchone_prepared("more", "SELECT ?::text, ?::text, ?::float8, ?::float8",
                             ([1], "a", 0.1, 0.2))


def test_a_prepared_call_survives_psycopg_deallocating_everything(db):
    """psycopg sends DEALLOCATE ALL after a ROLLBACK of its own: the statement is
    prepared again."""
    _postgres_only(db)
    db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY)")
    assert db.fetchone_prepared("count", "SELECT count(*) FROM t WHERE id > ?", (0,)) == ("0",)
    for _ in range(6):  # psycopg prepares a statement of its own on its 5th run
        db.execute("INSERT INTO t SELECT coalesce(max(id), 0) + ? FROM t", (1,))
    with pytest.raises(integrity_errors()), db.transaction():
        db.execute("INSERT INTO t VALUES (?)", (1,))
    db.scalar("SELECT 1")  # psycopg flushes its DEALLOCATE ALL before this one
    assert db.scalar("SELECT count(*) FROM pg_prepared_statements") == 0
    assert db.fetchone_prepared("count", "SELECT count(*) FROM t WHERE id > ?", (0,)) == ("6",)


def test_a_prepared_call_raises_psycopgs_errors(db):
    """A unique violation is one of integrity_errors() (the issuer retries on it); a NUL
    in a text value is refused before anything is sent."""
    _postgres_only(db)
    db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY)")
    insert = "INSERT INTO t VALUES (?) RETURNING id"
    assert db.fetchone_prepared("ins", insert, (7,)) == ("7",)
    with pytest.raises(integrity_errors(), match="duplicate key"):
        db.fetchone_prepared("ins", insert, (7,))
    with pytest.raises(psycopg.DataError, match="NUL"):
        db.fetchone_prepared("ins", insert, ("a\x00b",))
    with pytest.raises(psycopg.errors.UndefinedTable):
        db.fetchone_prepared("missing", "SELECT * FROM no_such_table WHERE 1 = ?", (1,))
    assert db.fetchall("SELECT id FROM t") == [(7,)]


def test_a_prepared_call_on_a_dropped_connection_is_a_connection_error(db, serving_url):
    """The server ends the session (a restart, an admin): the call raises one of
    connection_errors(), as psycopg's own calls do."""
    _postgres_only(db)
    assert db.fetchone_prepared("one", "SELECT ?::int4", (1,)) == ("1",)
    backend = db.scalar("SELECT pg_backend_pid()")
    with connect(serving_url) as admin:
        admin.execute("SELECT pg_terminate_backend(?)", (backend,))
    with pytest.raises(connection_errors()):
        db.fetchone_prepared("one", "SELECT ?::int4", (2,))


def _wal_frames(path: Path) -> int:
    """Bytes in the WAL beside ``path`` (0 when there is none: it was checkpointed and
    removed by the last connection's close)."""
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def _write_and_close(url: str) -> None:
    db = connect(url, migrate=False)
    with db.transaction():
        db.execute("INSERT INTO t VALUES (1)")
    db.close()


def test_kept_open_leaves_the_checkpoint_to_sqlite(tmp_path: Path):
    path = tmp_path / "s.sqlite"
    url = f"sqlite:///{path}"
    db = connect(url, migrate=False)
    db.execute("CREATE TABLE t (x INTEGER)")
    db.close()
    _write_and_close(url)
    assert _wal_frames(path) == 0  # the last close checkpointed
    with kept_open(url):
        _write_and_close(url)
        assert _wal_frames(path) > 0  # not the last close: no checkpoint
        db = connect(url, migrate=False)
        try:
            assert db.scalar("SELECT count(*) FROM t") == 2
        finally:
            db.close()
    assert _wal_frames(path) == 0  # the keeper's close was the last one


def test_kept_open_creates_nothing_and_ignores_other_databases(tmp_path: Path):
    missing = tmp_path / "not" / "there.sqlite"
    with kept_open(f"sqlite:///{missing}"):
        pass
    assert not missing.parent.exists()
    with kept_open("postgresql://nobody@127.0.0.1:1/none"), kept_open("sqlite:///:memory:"):
        pass  # no connection attempted
