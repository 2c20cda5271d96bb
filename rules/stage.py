"""Staging tables: a write's per-row values, put where one serving transaction can copy them.

A rule's day can be a million orders and as many messages. Inserted one statement per row
into the final tables, each row costs a seek in every B-tree of the table (≈ 6 µs a row on
SQLite); one ``INSERT ... SELECT`` from a staging table appends them instead (≈ 1.6 µs).
So a write first loads its frames into staging tables, then copies them in SQL.
:class:`Stage` does the loading, the fastest way the serving database allows:

* **SQLite with the ADBC SQLite driver** (``adbc-driver-sqlite``, a dependency): each
  frame goes from Arrow to private scratch files in C (no Python object per value),
  written by a thread of its own, so one table is staged while the serving connection
  copies another. A large frame is written in parts (``PARTS``), one file each, so the
  serving connection copies the first part while the thread writes the next (copying
  a row costs more than staging it, so after the first part it never waits); the
  serving connection attaches each file as ``rule_stage_<table>_<part>`` when it reads
  it. The driver carries its own SQLite library, so
  it never opens the serving file (two SQLite libraries holding POSIX locks on one file
  in one process can corrupt it): it writes and closes a scratch file before the serving
  connection opens it.
* **SQLite without the driver**: temporary tables filled by ``executemany``.
* **PostgreSQL**: temporary tables (``ON COMMIT DROP``) filled by ``COPY``.

Use it around the transaction that reads the staged tables (``with closing(Stage(db)) as
stage, db.transaction(): ...``; read a table by :meth:`Stage.parts`): :meth:`Stage.close`,
after the commit or rollback, waits for the threads, detaches and deletes the scratch
files (and drops SQLite's temporary tables). Nothing staged is ever part of the serving
database's contents.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from types import ModuleType

import polars as pl

from serving.db import ServingDB

SCRATCH_ALIAS = "rule_stage"
"""The schema name of an attached scratch file: ``rule_stage_<table>_<part>``."""

PARTS = 4
"""Scratch parts of a frame of at least ``PART_ROWS`` rows (SQLite attaches at most 10
files: two tables of 4 parts fit)."""
PART_ROWS = 100_000


def adbc_sqlite() -> ModuleType | None:
    """The ADBC SQLite driver's DB-API module, or None when it is not installed."""
    try:
        import adbc_driver_sqlite.dbapi as adbc
    except ImportError:
        return None
    return adbc


def _declared(frame: pl.DataFrame, dialect: str) -> str:
    """Column declarations for a staging table of ``frame``: its first column, an
    increasing integer (the row's id), is the key (SQLite: the rowid, so a scan returns
    the rows in that order).
    SQLite holds dates and times as text (see :func:`_as_stored`)."""
    def declared(dtype: pl.DataType) -> str:
        if dtype.is_integer():
            return "BIGINT"
        if dialect == "postgresql" and dtype == pl.Date:
            return "DATE"
        if dialect == "postgresql" and isinstance(dtype, pl.Datetime):
            return "TIMESTAMP"
        return "TEXT"

    first, *rest = frame.columns
    key = "INTEGER" if dialect == "sqlite" else "BIGINT"  # SQLite: INTEGER is the rowid
    return ", ".join([f"{first} {key} PRIMARY KEY"]
                     + [f"{c} {declared(frame.schema[c])}" for c in rest])


def _as_stored(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with dates and (naive UTC) times as text, the way the SQLite adapters of
    :mod:`serving.db` store them: ``YYYY-MM-DD`` and ``YYYY-MM-DD HH:MM:SS[.ffffff]``
    (the fraction only where it is not zero)."""
    def stored(name: str, dtype: pl.DataType) -> pl.Expr:
        column = pl.col(name)
        if dtype == pl.Date:
            return column.dt.strftime("%Y-%m-%d")
        if isinstance(dtype, pl.Datetime):
            whole = column.dt.strftime("%Y-%m-%d %H:%M:%S")
            if not (frame[name].dt.microsecond() != 0).any():
                return whole
            return pl.when(column.dt.microsecond() == 0).then(whole).otherwise(
                column.dt.strftime("%Y-%m-%d %H:%M:%S.%6f")).alias(name)
        return column

    return frame.select(stored(name, dtype) for name, dtype in frame.schema.items())


def _write_scratch(adbc: ModuleType, path: Path, table: str, frame: pl.DataFrame) -> None:
    """Write ``frame`` as ``table`` into the new scratch file ``path`` (ADBC, in C)."""
    with adbc.connect(str(path), autocommit=True) as scratch, scratch.cursor() as cur:
        cur.execute("PRAGMA journal_mode = OFF")  # a scratch file: nothing to recover
        cur.execute("PRAGMA synchronous = OFF")
        cur.execute(f"CREATE TABLE {table} ({_declared(frame, 'sqlite')})")
        if frame.height:
            cur.adbc_ingest(table, _as_stored(frame).to_arrow(), mode="append")


def _split(frame: pl.DataFrame) -> list[pl.DataFrame]:
    """``frame`` in :data:`PARTS` consecutive parts when it is large, else whole."""
    if frame.height < PART_ROWS:
        return [frame]
    size = -(-frame.height // PARTS)
    return [frame.slice(start, size) for start in range(0, frame.height, size)]


class Stage:
    """The staging tables of one write: :meth:`load` starts filling them from polars
    frames, :meth:`parts` gives the names to read one by, in row order (each once it is
    filled), and :meth:`close` removes them.

    ``scratch``: stage in attached scratch files, one per table, each written by a thread
    of its own, so one is written while the serving connection copies another (SQLite
    only; default: when the ADBC driver is installed and no transaction is open yet, since
    a file attached inside a transaction can be detached only after it). Otherwise the
    tables are filled at once by :meth:`load`."""

    def __init__(self, db: ServingDB, *, scratch: bool | None = None):
        self.db = db
        if scratch is None:
            scratch = (db.dialect == "sqlite" and not db.in_transaction
                       and adbc_sqlite() is not None)
        self.scratch = scratch
        self._names: dict[str, list[str]] = {}
        self._writing: dict[str, list[tuple[Path, Future[None]]]] = {}
        self._files: list[Path] = []
        self._attached: list[str] = []
        self._temporary: list[str] = []
        self._pools: list[ThreadPoolExecutor] = []

    def load(self, frames: dict[str, pl.DataFrame]) -> None:
        """Create a staging table per frame, its rows in frame order (the first column of
        each frame must be an increasing integer: the row's id)."""
        if self.scratch:
            self._load_scratch(frames)
            return
        for table, frame in frames.items():
            name = f"rule_stage_{table}"
            columns = ", ".join(frame.columns)
            declared = _declared(frame, self.db.dialect)
            if self.db.dialect == "postgresql":
                self.db.execute(f"CREATE TEMP TABLE {name} ({declared}) ON COMMIT DROP")
                with self.db.raw.cursor() as cur, cur.copy(
                        f"COPY {name} ({columns}) FROM STDIN") as copy:
                    for row in frame.iter_rows():
                        copy.write_row(row)
            else:
                self.db.execute(f"CREATE TEMP TABLE {name} ({declared})")
                self._temporary.append(name)
                self.db.executemany(f"INSERT INTO {name} ({columns}) VALUES "
                                    f"({', '.join('?' for _ in frame.columns)})",
                                    _as_stored(frame).iter_rows())
            self._names[table] = [name]

    def _load_scratch(self, frames: dict[str, pl.DataFrame]) -> None:
        adbc = adbc_sqlite()
        assert adbc is not None, "scratch staging needs the ADBC SQLite driver"
        for table, frame in frames.items():
            writer = ThreadPoolExecutor(max_workers=1,  # one table's parts, in order
                                        thread_name_prefix=f"rule-stage-{table}")
            self._pools.append(writer)
            self._writing[table] = []
            for part in _split(frame):
                handle, name = tempfile.mkstemp(prefix=f"kequn-rule-stage-{table}-",
                                                suffix=".sqlite")
                os.close(handle)
                path = Path(name)
                self._files.append(path)
                self._writing[table].append(
                    (path, writer.submit(_write_scratch, adbc, path, table, part)))

    def parts(self, table: str) -> Iterator[str]:
        """The names to read staging ``table`` by, its rows in order across them; each is
        yielded once it is filled (scratch: once its file is written, then attached)."""
        if table not in self._writing:
            yield from self._names[table]
            return
        writing = self._writing.pop(table)
        self._names[table] = []
        for number, (path, written) in enumerate(writing):
            written.result()
            alias = f"{SCRATCH_ALIAS}_{table}_{number}"
            self.db.execute(f"ATTACH DATABASE ? AS {alias}", (str(path),))
            self._attached.append(alias)
            self._names[table].append(f"{alias}.{table}")
            yield f"{alias}.{table}"

    def close(self) -> None:
        """Detach and delete the scratch files, drop SQLite's temporary tables (call it once
        the transaction that read them has ended)."""
        for pool in self._pools:
            pool.shutdown(wait=True, cancel_futures=True)
        self._pools = []
        for alias in self._attached:
            with suppress(Exception):
                self.db.execute(f"DETACH DATABASE {alias}")
        for path in self._files:
            path.unlink(missing_ok=True)
        for name in self._temporary:  # already gone if the transaction was rolled back
            with suppress(Exception):
                self.db.execute(f"DROP TABLE IF EXISTS temp.{name}")
        self._names, self._writing = {}, {}
        self._files, self._attached, self._temporary = [], [], []
