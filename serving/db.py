"""One handle on the serving database, SQLite or PostgreSQL, with one calling style.

The serving database (architecture §1, §6) is where the business systems read: a SQLite file
by default, PostgreSQL in production. :func:`connect` opens either from a URL and
returns a :class:`ServingDB`, whose methods behave the same on both:

* **Placeholders**: always write ``?`` (qmark style). On PostgreSQL each ``?`` outside
  a quoted literal becomes ``%s`` (and a literal ``%`` becomes ``%%``) before psycopg
  sees the statement. Never paste values into SQL; bind them.
* **Autocommit outside transactions**: a statement run outside :meth:`ServingDB.transaction`
  commits on its own. Group writes that belong together in ``with db.transaction():``.
  On SQLite the transaction starts with ``BEGIN IMMEDIATE``, so concurrent writers queue
  on the write lock (up to the busy timeout) instead of failing half-way. On PostgreSQL it
  is an ordinary READ COMMITTED transaction: callers that read-then-write take
  ``SELECT ... FOR UPDATE`` or an advisory lock. Nested ``transaction()`` blocks become
  savepoints.
* **Types**: rows come back as tuples. ``DATE`` columns read back as :class:`datetime.date`
  and ``TIMESTAMP`` columns as naive :class:`datetime.datetime` holding UTC on both
  dialects (SQLite through registered converters, PostgreSQL with the session time zone
  set to UTC; aware datetimes are converted to UTC on the way in). On SQLite the
  conversion follows the declared column type, so an expression over a date (``min(as_of)``)
  comes back as ISO text: cast in Python, or select the column itself. Booleans read back as
  ``0``/``1`` on SQLite and ``True``/``False`` on PostgreSQL, so compare them truthily.
* **Errors**: :func:`integrity_errors` is the tuple of both drivers' integrity errors
  (unique or foreign-key violations), for ``except integrity_errors():``, and
  :func:`connection_errors` PostgreSQL's broken connections. psycopg is imported by the
  first PostgreSQL connection, not by this module: a SQLite-only process never loads it.
* **A hot call** (PostgreSQL): :meth:`ServingDB.fetchone_prepared` runs one statement as
  a server-side prepared statement through libpq, its values and result in text form,
  for about half psycopg's client CPU per call (an issue request).

SQLite files open in WAL mode with a busy timeout, foreign keys on and
``synchronous=NORMAL`` (durable against a killed process; a power cut may lose the last
commits but never leaves a half-written one). The parent folder is created.

``connect(url)`` applies the ``serving`` migration stream (``serving/schema.py``) unless
``migrate=False``; other areas apply their own streams with
:func:`kequn.migrations.apply_migrations`.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kequn.errors import ExecutionError, Location
from kequn.migrations import apply_migrations
from serving.schema import SERVING_MIGRATIONS, STREAM

if TYPE_CHECKING:
    import psycopg

Dialect = Literal["sqlite", "postgresql"]
Params = Sequence[Any] | None


def integrity_errors() -> tuple[type[BaseException], ...]:
    """Both drivers' integrity errors (unique or foreign-key violations), for ``except
    integrity_errors():`` (psycopg's once it is loaded: no PostgreSQL error can be raised
    before the first PostgreSQL connection loads it)."""
    pg = sys.modules.get("psycopg")
    if pg is None:
        return (sqlite3.IntegrityError,)
    return (sqlite3.IntegrityError, pg.errors.IntegrityError)


def connection_errors() -> tuple[type[BaseException], ...]:
    """The server went away or the connection broke (PostgreSQL), for ``except``; empty
    while psycopg is not loaded (no PostgreSQL connection was ever opened)."""
    pg = sys.modules.get("psycopg")
    if pg is None:
        return ()
    return (pg.OperationalError, pg.InterfaceError)

SQLITE_BUSY_TIMEOUT_MS = 30_000

# One number for all kequn migration runs: pg_advisory_xact_lock(MIGRATION_LOCK_KEY).
BULK_CACHE_KIB = 262_144
"""SQLite page cache for bulk writes (:meth:`ServingDB.bulk_cache`): 256 MiB, released after."""
MIGRATION_LOCK_KEY = 0x6B65_7175_6E00  # "kequn\0"


def utcnow() -> datetime:
    """The current time as a naive UTC datetime, the form TIMESTAMP columns hold."""
    return datetime.now(UTC).replace(tzinfo=None)


def _adapt_datetime(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(" ")


def _convert_timestamp(raw: bytes) -> datetime:
    value = datetime.fromisoformat(raw.decode())
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


sqlite3.register_adapter(date, date.isoformat)
sqlite3.register_adapter(datetime, _adapt_datetime)
sqlite3.register_converter("DATE", lambda raw: date.fromisoformat(raw.decode()[:10]))
sqlite3.register_converter("TIMESTAMP", _convert_timestamp)


def _rewrite_qmarks(sql: str, mark: Callable[[int], str], percent: str) -> str:
    """``sql`` with the n-th ``?`` outside quotes replaced by ``mark(n)`` and every ``%``
    by ``percent``."""
    out: list[str] = []
    quote: str | None = None
    marks = 0
    for ch in sql:
        if quote:
            out.append(percent if ch == "%" else ch)
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            marks += 1
            out.append(mark(marks))
        elif ch == "%":
            out.append(percent)
        else:
            out.append(ch)
    return "".join(out)


@lru_cache(maxsize=512)
def qmark_to_pyformat(sql: str) -> str:
    """``sql`` with each ``?`` outside quotes turned into ``%s`` and ``%`` escaped.

    >>> qmark_to_pyformat("SELECT '?', x FROM t WHERE a = ? AND b LIKE 'a%'")
    "SELECT '?', x FROM t WHERE a = %s AND b LIKE 'a%%'"
    """
    return _rewrite_qmarks(sql, lambda _: "%s", "%%")


@lru_cache(maxsize=64)
def qmark_to_numbered(sql: str) -> str:
    """``sql`` with the n-th ``?`` outside quotes turned into ``$n`` (PostgreSQL's own
    placeholders).

    >>> qmark_to_numbered("SELECT '?', x FROM t WHERE a = ? AND b LIKE 'a%' AND c = ?")
    "SELECT '?', x FROM t WHERE a = $1 AND b LIKE 'a%' AND c = $2"
    """
    return _rewrite_qmarks(sql, lambda n: f"${n}", "%")


def pg_text(value: Any) -> bytes | None:
    """``value`` in PostgreSQL's text input format, as :meth:`ServingDB.fetchone_prepared`
    sends it (None stays NULL); a datetime as naive UTC, as :class:`ServingDB` stores it.
    ``bytes`` are taken as that text form already (a caller that sends the same value on
    every call encodes it once with this function)."""
    kind = type(value)  # the common exact types first: an issue binds 28 values
    if kind is bytes:
        return value
    if kind is str:
        if "\x00" in value:  # libpq reads a text parameter up to its first NUL
            import psycopg

            raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        return value.encode()
    if kind is int:
        return str(value).encode()
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(" ").encode()
    if isinstance(value, date):
        return value.isoformat().encode()
    if isinstance(value, str):  # a str enum's own text, not its str() ('Class.MEMBER')
        return pg_text(str.__str__(value))
    if isinstance(value, int | Decimal):
        return str(value).encode()
    if isinstance(value, float):
        return repr(value).encode()  # the shortest text that reads back as the same float
    raise TypeError(f"cannot send a {type(value).__name__} as a PostgreSQL text parameter")


_NO_SUCH_STATEMENT = b"26000"
"""SQLSTATE invalid_sql_statement_name: no prepared statement of that name."""


def _pg_error(result: Any) -> psycopg.Error:
    """The psycopg exception for a failed libpq result (by its SQLSTATE)."""
    import psycopg
    from psycopg import pq

    message = (result.error_message or b"").decode(errors="replace").strip()
    state = result.error_field(pq.DiagnosticField.SQLSTATE)
    try:
        kind = psycopg.errors.lookup(state.decode()) if state else psycopg.OperationalError
    except KeyError:
        kind = psycopg.DatabaseError
    return kind(message)


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///path`` URL (``sqlite:////abs`` is absolute).

    >>> sqlite_path("sqlite:///data/serving.sqlite")
    'data/serving.sqlite'
    >>> sqlite_path("sqlite:////tmp/s.sqlite")
    '/tmp/s.sqlite'
    """
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ExecutionError(
            f"serving URL {url!r} is not sqlite:///PATH or postgresql://...", Location()
        )
    return url[len(prefix):]


def dialect_of(url: str) -> Dialect:
    """``'sqlite'`` or ``'postgresql'`` for a serving URL; anything else is an error."""
    if url.startswith("sqlite:"):
        return "sqlite"
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        return "postgresql"
    raise ExecutionError(
        f"serving URL {url!r} is neither sqlite:///PATH nor postgresql://...", Location(),
        hint="set KEQUN_SERVING_URL or --serving",
    )


class ServingDB:
    """An open serving database; see the module docstring for the calling conventions."""

    def __init__(self, url: str, raw: Any, dialect: Dialect):
        self.url = url
        self.raw = raw
        self.dialect: Dialect = dialect
        self._depth = 0
        self._savepoint = 0
        self._prepared: set[str] = set()

    # -- statements ---------------------------------------------------------------------
    def _sql(self, sql: str, params: Params) -> tuple[str, Params]:
        if self.dialect == "postgresql":
            if params is None or len(params) == 0:
                return sql, None
            return qmark_to_pyformat(sql), params
        return sql, params if params is not None else ()

    def execute(self, sql: str, params: Params = None) -> Any:
        """Run one statement with ``?`` placeholders; returns the driver cursor."""
        text, bound = self._sql(sql, params)
        return self.raw.execute(text, bound)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for each parameter row (pipelined on PostgreSQL)."""
        if self.dialect == "postgresql":
            with self.raw.cursor() as cur:
                cur.executemany(qmark_to_pyformat(sql), rows)
        else:
            self.raw.executemany(sql, rows)

    def fetchall(self, sql: str, params: Params = None) -> list[tuple[Any, ...]]:
        """All result rows of a query, as tuples."""
        return list(self.execute(sql, params).fetchall())

    def fetchone(self, sql: str, params: Params = None) -> tuple[Any, ...] | None:
        """The first result row of a query, or None."""
        row = self.execute(sql, params).fetchone()
        return tuple(row) if row is not None else None

    def fetchone_prepared(self, name: str, sql: str,
                          params: Sequence[Any]) -> tuple[str | None, ...] | None:
        """PostgreSQL: the first row of ``sql`` (``?`` placeholders) as text (None for
        NULL), run as the statement prepared once per connection under ``name``.

        For a hot one-statement call (an issue): it goes through libpq itself, with its
        parameters and columns in text form, which costs about half the client CPU of
        :meth:`fetchone` (measured 33 against 60 µs per call of 28 parameters). The
        values are bound, never pasted (a ``bytes`` value is sent as the text form
        :func:`pg_text` made of it); an error raises psycopg's exception for its
        SQLSTATE, as :meth:`fetchone` would (a dropped connection: one of
        :func:`connection_errors`). The call blocks in libpq (other threads run): meant
        for short statements, since Ctrl-C is seen only once it returns.
        """
        if self.dialect != "postgresql":
            raise ValueError("fetchone_prepared is for PostgreSQL")
        from psycopg import pq  # loaded by the connection

        values = [pg_text(v) for v in params]
        with self.raw.lock:  # psycopg's own lock on the connection
            pgconn = self.raw.pgconn
            for _ in range(2):
                if name not in self._prepared:
                    done = pgconn.prepare(name.encode(), qmark_to_numbered(sql).encode())
                    if done.status != pq.ExecStatus.COMMAND_OK:
                        raise _pg_error(done)
                    self._prepared.add(name)
                result = pgconn.exec_prepared(name.encode(), values)
                # psycopg sends DEALLOCATE ALL after a ROLLBACK, DROP or ALTER of its own:
                # the statement is gone (nothing ran), so prepare it again
                if (result.status == pq.ExecStatus.TUPLES_OK
                        or result.error_field(pq.DiagnosticField.SQLSTATE) != _NO_SUCH_STATEMENT):
                    break
                self._prepared.discard(name)
        if result.status != pq.ExecStatus.TUPLES_OK:
            raise _pg_error(result)
        if not result.ntuples:
            return None
        return tuple(None if (v := result.get_value(0, i)) is None else v.decode()
                     for i in range(result.nfields))

    def scalar(self, sql: str, params: Params = None) -> Any:
        """The first column of the first row, or None when there is no row."""
        row = self.fetchone(sql, params)
        return row[0] if row else None

    def has_table(self, name: str) -> bool:
        """Whether table (or view) ``name`` exists (in the default schema)."""
        if self.dialect == "sqlite":
            return bool(self.scalar("SELECT count(*) FROM sqlite_master WHERE type IN "
                                    "('table', 'view') AND name = ?", (name,)))
        return bool(self.scalar("SELECT to_regclass(?) IS NOT NULL", (name,)))

    def serialise_migrations(self) -> None:
        """Wait for any other migration run (SQLite's BEGIN IMMEDIATE already holds the
        write lock; PostgreSQL takes a transaction-scoped advisory lock)."""
        if self.dialect == "postgresql":
            self.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK_KEY,))

    # -- transactions -------------------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        """Whether a :meth:`transaction` block is open on this handle."""
        return self._depth > 0

    @contextmanager
    def transaction(self) -> Iterator[ServingDB]:
        """One atomic unit: committed when the block ends, rolled back on any exception.

        SQLite: ``BEGIN IMMEDIATE`` (takes the write lock up front). PostgreSQL: ``BEGIN``.
        A nested block is a savepoint, rolled back alone if it raises.
        """
        if self._depth:
            self._savepoint += 1
            name = f"kequn_sp{self._savepoint}"
            self.raw.execute(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield self
            except BaseException:
                self.raw.execute(f"ROLLBACK TO SAVEPOINT {name}")
                self.raw.execute(f"RELEASE SAVEPOINT {name}")
                raise
            finally:
                self._depth -= 1
            self.raw.execute(f"RELEASE SAVEPOINT {name}")
            return
        self.raw.execute("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._depth = 0
            # The connection may be gone; then the server has rolled back by itself.
            with suppress(Exception):
                self.raw.execute("ROLLBACK")
            raise
        self._depth = 0
        self.raw.execute("COMMIT")

    def ids_source(self) -> str:
        """A subquery of one column ``value``: the ids bound, as :meth:`ids_param`, to
        its one ``?`` (SQLite: a JSON array expanded by ``json_each``; PostgreSQL: a
        ``BIGINT[]`` unnested). Many ids in one parameter, with no temporary table."""
        if self.dialect == "sqlite":
            return "SELECT value FROM json_each(?)"
        return "SELECT unnest(CAST(? AS BIGINT[])) AS value"

    def ids_param(self, ids: Iterable[int]) -> Any:
        """``ids`` (Python ints) as the parameter of :meth:`ids_source`."""
        values = ids if isinstance(ids, list) else list(ids)
        return json.dumps(values) if self.dialect == "sqlite" else values

    @contextmanager
    def bulk_cache(self, kib: int = BULK_CACHE_KIB) -> Iterator[ServingDB]:
        """SQLite: a page cache of ``kib`` KiB on this connection for the block (the
        previous size after it, also on error); enter it before the transaction. A bulk
        write touches pages all over the table and its indexes; with the default 2 MB
        cache they are read again and again and spilled to the WAL mid-transaction
        (measured: a sync applying a 5% churn of 3M members ~20% faster; 1M coupon rows
        into the coupons table 15.4 s -> 10.0 s). (No-op on PostgreSQL, whose cache is
        the server's.)"""
        if self.dialect != "sqlite":
            yield self
            return
        before = self.raw.execute("PRAGMA cache_size").fetchone()[0]
        self.raw.execute(f"PRAGMA cache_size = -{int(kib)}")
        try:
            yield self
        finally:
            self.raw.execute(f"PRAGMA cache_size = {int(before)}")

    def close(self) -> None:
        """Close the connection (an open transaction is rolled back)."""
        self.raw.close()

    def __enter__(self) -> ServingDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ServingDB({self.dialect}, {redact(self.url)!r})"


def redact(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages and logs)."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}@{host}"
    return url


def _journal_wal(raw: sqlite3.Connection) -> None:
    """Switch to WAL, waiting (up to the busy timeout) while another process opening the
    same new file holds it: SQLite does not apply its busy handler to this switch."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.01
    while True:
        try:
            raw.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def _connect_sqlite(url: str) -> ServingDB:
    path = sqlite_path(url)
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    raw = sqlite3.connect(
        path,
        isolation_level=None,
        timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
        detect_types=sqlite3.PARSE_DECLTYPES,
        check_same_thread=False,
    )
    raw.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    if path != ":memory:":
        _journal_wal(raw)
    raw.execute("PRAGMA synchronous = NORMAL")
    raw.execute("PRAGMA foreign_keys = ON")
    return ServingDB(url, raw, "sqlite")


def _connect_postgresql(url: str) -> ServingDB:
    import psycopg

    if url.startswith("postgresql+psycopg://"):
        url = "postgresql://" + url[len("postgresql+psycopg://"):]
    try:
        raw = psycopg.connect(url, autocommit=True)
    except psycopg.OperationalError as exc:
        raise ExecutionError(
            f"cannot connect to the serving database {redact(url)}: {exc}".strip(), Location()
        ) from exc
    raw.execute("SET TIME ZONE 'UTC'")
    return ServingDB(url, raw, "postgresql")


@contextmanager
def kept_open(url: str) -> Iterator[None]:
    """Inside this block, the SQLite serving database at ``url`` stays open in this process,
    so that closing any other connection to it is never closing the last one.

    SQLite checkpoints the WAL into the database file, and syncs both to disk, whenever
    the last connection to a file closes: 0.01-0.2 s per close, paid by every step of a run
    that opened and closed the serving database. Kept open, the WAL is checkpointed by
    SQLite's automatic checkpoints as commits fill it, and once more when the block ends
    (if this connection is then the last). What was committed is as durable either way.
    Nothing is kept for PostgreSQL, an in-memory database, or a file that does not exist
    yet (it is not created); a file that cannot be opened is left alone.
    """
    path = sqlite_path(url) if dialect_of(url) == "sqlite" else ":memory:"
    keeper = None
    if path != ":memory:" and Path(path).is_file():
        with suppress(sqlite3.Error):
            keeper = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=rw", uri=True,
                                     isolation_level=None, check_same_thread=False,
                                     timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
            # a first read maps the WAL index: from here this connection counts as open
            keeper.execute("PRAGMA schema_version").fetchall()
    try:
        yield
    finally:
        if keeper is not None:
            keeper.close()


def connect(url: str, *, migrate: bool = True) -> ServingDB:
    """Open the serving database at ``url`` (``sqlite:///PATH`` or ``postgresql://...``).

    With ``migrate`` (the default) the ``serving`` schema stream is brought up to date
    first (safe to run from several processes at once; a no-op when current).
    """
    db = _connect_postgresql(url) if dialect_of(url) == "postgresql" else _connect_sqlite(url)
    if migrate:
        try:
            apply_migrations(db, STREAM, SERVING_MIGRATIONS)
        except BaseException:
            db.close()
            raise
    return db
