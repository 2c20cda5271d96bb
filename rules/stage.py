"""Staging tables: a write's per-row values, put where one serving transaction can copy them.

A rule's day can be a million orders and as many messages. Inserted one statement per row
into the final tables, each row costs a seek in every B-tree of the table (≈ 6 µs a row on
SQLite); one ``INSERT ... SELECT`` from a staging table appends them instead (≈ 1.6 µs).
So a write first loads its frames into staging tables, then copies them in SQL.
:class:`Stage` does the loading, the fastest way the serving database allows:

* **SQLite with the ADBC SQLite driver** (``adbc-driver-sqlite``, a dependency): the
  frames go from Arrow to a private scratch file in C (no Python object per value), and the
  serving connection attaches that file as ``rule_stage``. The driver carries its own
  SQLite library, so it never opens the serving file (two SQLite libraries holding POSIX
  locks on one file in one process can corrupt it): it writes the scratch file and closes
  it before the serving connection opens it.
* **SQLite without the driver**: temporary tables filled by ``executemany``.
* **PostgreSQL**: temporary tables (``ON COMMIT DROP``) filled by ``COPY``.

Use it around the transaction that reads the staged tables (``with closing(Stage(db)) as
stage, db.transaction(): ...``): :meth:`Stage.close`, after the commit or rollback,
detaches and deletes the scratch file (and drops SQLite's temporary tables).
"""

from __future__ import annotations

import os
import tempfile
from contextlib import suppress
from pathlib import Path
from types import ModuleType

import polars as pl

from serving.db import ServingDB

SCRATCH_ALIAS = "rule_stage"
"""The schema name of the attached scratch file."""


def adbc_sqlite() -> ModuleType | None:
    """The ADBC SQLite driver's DB-API module, or None when it is not installed."""
    try:
        import adbc_driver_sqlite.dbapi as adbc
    except ImportError:
        return None
    return adbc


def _declared(frame: pl.DataFrame, dialect: str) -> str:
    """Column declarations for a staging table of ``frame``: its first column, an integer
    position, is the key (SQLite: the rowid, so a scan returns the rows in that order).
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
    return ", ".join([f"{first} INTEGER PRIMARY KEY"]
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


class Stage:
    """The staging tables of one write, filled from polars frames by :meth:`load`, read
    by the name :meth:`load` returns, gone after :meth:`close`.

    ``scratch``: stage in an attached scratch file (SQLite only; default: when the ADBC
    driver is installed and no transaction is open yet, since a file attached inside a
    transaction can be detached only after it)."""

    def __init__(self, db: ServingDB, *, scratch: bool | None = None):
        self.db = db
        if scratch is None:
            scratch = (db.dialect == "sqlite" and not db.in_transaction
                       and adbc_sqlite() is not None)
        self.scratch = scratch
        self.path: Path | None = None
        self.temporary: list[str] = []

    def load(self, frames: dict[str, pl.DataFrame]) -> dict[str, str]:
        """Create a staging table per frame, its rows in frame order; returns the name to
        read each by. The first column of each frame must be its integer row position."""
        if self.scratch:
            return self._load_scratch(frames)
        names = {}
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
                self.temporary.append(name)
                self.db.executemany(f"INSERT INTO {name} ({columns}) VALUES "
                                    f"({', '.join('?' for _ in frame.columns)})",
                                    _as_stored(frame).iter_rows())
            names[table] = name
        return names

    def _load_scratch(self, frames: dict[str, pl.DataFrame]) -> dict[str, str]:
        adbc = adbc_sqlite()
        assert adbc is not None, "scratch staging needs the ADBC SQLite driver"
        handle, path = tempfile.mkstemp(prefix="kequn-rule-stage-", suffix=".sqlite")
        os.close(handle)
        self.path = Path(path)
        with adbc.connect(path, autocommit=True) as scratch, scratch.cursor() as cur:
            cur.execute("PRAGMA journal_mode = OFF")  # a scratch file: nothing to recover
            cur.execute("PRAGMA synchronous = OFF")
            for table, frame in frames.items():
                cur.execute(f"CREATE TABLE {table} ({_declared(frame, 'sqlite')})")
                if frame.height:
                    cur.adbc_ingest(table, _as_stored(frame).to_arrow(), mode="append")
        self.db.execute(f"ATTACH DATABASE ? AS {SCRATCH_ALIAS}", (path,))
        return {table: f"{SCRATCH_ALIAS}.{table}" for table in frames}

    def close(self) -> None:
        """Detach and delete the scratch file, drop SQLite's temporary tables (call it once
        the transaction that read them has ended)."""
        if self.path is not None:
            with suppress(Exception):
                self.db.execute(f"DETACH DATABASE {SCRATCH_ALIAS}")
            self.path.unlink(missing_ok=True)
            self.path = None
        for name in self.temporary:  # already gone if the transaction was rolled back
            with suppress(Exception):
                self.db.execute(f"DROP TABLE IF EXISTS temp.{name}")
        self.temporary = []
