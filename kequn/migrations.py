"""Versioned schema migrations, one stream per area, for any of kequn's databases.

A *stream* (``"serving"``, ``"issuance"``, ``"warehouse"``...) is an ordered list of
:class:`Migration`.
:func:`apply_migrations` runs the ones not yet recorded in
``schema_migrations(stream, version, name, applied_at)``, each in its own transaction
together with its record, so a migration is either fully applied and recorded or not at
all. Running it twice is a no-op; two processes running it at once serialise (each
database says how, :meth:`MigrationTarget.serialise_migrations`: SQLite's ``BEGIN
IMMEDIATE``, a PostgreSQL advisory lock, DuckDB's single writer) and the second sees the
first's records and skips them. The serving database (:mod:`serving.db`) and the
warehouse (:mod:`warehouse.db`) both run their streams through :func:`apply_migrations`.

Example::

    MIGRATIONS = (
        Migration(1, "create campaigns", ("CREATE TABLE campaigns (...)",)),
        Migration(2, "index", {"sqlite": ("CREATE INDEX ...",),
                               "postgresql": ("CREATE INDEX ...",)}),
    )
    apply_migrations(db, "issuance", MIGRATIONS)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from kequn.errors import ExecutionError, Location

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    stream VARCHAR(64) NOT NULL,
    version INTEGER NOT NULL,
    name VARCHAR(200) NOT NULL,
    applied_at TIMESTAMP NOT NULL,
    PRIMARY KEY (stream, version)
)
"""

Statements = str | Sequence[str] | Mapping[str, str | Sequence[str]]


class MigrationTarget(Protocol):
    """What a database offers the migration runner (``?`` placeholders)."""

    dialect: str

    def transaction(self) -> AbstractContextManager[Any]: ...

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any: ...

    def fetchall(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        ...

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any: ...

    def has_table(self, name: str) -> bool:
        """Whether table ``name`` (unqualified, default schema) exists."""
        ...

    def serialise_migrations(self) -> None:
        """Inside an open transaction: wait until no other process is migrating."""
        ...


@dataclass(frozen=True)
class Migration:
    """One schema change: a version (increasing within its stream), a name, the SQL.

    ``statements`` is portable SQL (one string or a sequence of statements) or a mapping
    from dialect (``"sqlite"``, ``"postgresql"``) to that dialect's statements.
    """

    version: int
    name: str
    statements: Statements

    def for_dialect(self, dialect: str) -> tuple[str, ...]:
        """The statements to run on ``dialect``."""
        chosen: str | Sequence[str]
        if isinstance(self.statements, Mapping):
            if dialect not in self.statements:
                raise ExecutionError(
                    f"migration {self.version} ({self.name}) has no SQL for {dialect}",
                    Location(),
                )
            chosen = self.statements[dialect]
        else:
            chosen = self.statements
        return (chosen,) if isinstance(chosen, str) else tuple(chosen)


def one_of(column: str, values: Sequence[str]) -> str:
    """A CHECK condition that ``column`` is one of ``values`` (kequn's own constants), as
    an OR of equalities: SQLite (3.40) evaluates ``column IN (...)`` in a CHECK by
    building a small table for every row written, which made a million-row insert
    about 0.7 s slower; the ORs cost next to nothing, on every dialect."""
    return " OR ".join(f"{column} = '{value}'" for value in values)


def _check_sequence(stream: str, migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if any(v <= 0 for v in versions) or versions != sorted(set(versions)):
        raise ExecutionError(
            f"migrations of stream '{stream}' must have unique, increasing, positive "
            f"versions; got {versions}",
            Location(),
        )


def applied_versions(db: MigrationTarget, stream: str) -> dict[int, str]:
    """The versions of ``stream`` already applied, with their names ({} before any)."""
    with db.transaction():
        db.serialise_migrations()
        db.execute(_BOOKKEEPING)
        rows = db.fetchall(
            "SELECT version, name FROM schema_migrations WHERE stream = ?", (stream,)
        )
    return {int(v): str(n) for v, n in rows}


def _recorded_without_lock(db: MigrationTarget, stream: str) -> dict[int, str] | None:
    """The recorded versions read without any lock, or None before the first migration.

    The fast path of every connect: a current database needs no write lock at all.
    """
    if not db.has_table("schema_migrations"):
        return None
    rows = db.fetchall("SELECT version, name FROM schema_migrations WHERE stream = ?", (stream,))
    return {int(v): str(n) for v, n in rows}


def apply_migrations(db: MigrationTarget, stream: str,
                     migrations: Sequence[Migration]) -> list[int]:
    """Bring ``stream`` up to date; return the versions applied by this call.

    Each pending migration runs in one transaction with its ``schema_migrations`` row.
    A recorded version whose name differs from the code's is an error (the database was
    migrated by different code), and so is a database ahead of the code.
    """
    _check_sequence(stream, migrations)
    done = _recorded_without_lock(db, stream)
    if done is None or any(m.version not in done for m in migrations):
        done = applied_versions(db, stream)
    known = {m.version: m for m in migrations}
    for version, name in sorted(done.items()):
        if version not in known:
            raise ExecutionError(
                f"the database has migration {version} ({name}) of stream "
                f"'{stream}', which this code does not know; upgrade kequn",
                Location(),
            )
        if known[version].name != name:
            raise ExecutionError(
                f"migration {version} of stream '{stream}' is recorded as {name!r} but "
                f"the code calls it {known[version].name!r}",
                Location(),
            )
    applied: list[int] = []
    for migration in migrations:
        if migration.version in done:
            continue
        with db.transaction():
            db.serialise_migrations()
            already = db.scalar(
                "SELECT count(*) FROM schema_migrations WHERE stream = ? AND version = ?",
                (stream, migration.version),
            )
            if already:
                continue  # another process applied it while we waited for the lock
            for statement in migration.for_dialect(db.dialect):
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_migrations (stream, version, name, applied_at) "
                "VALUES (?, ?, ?, ?)",
                (stream, migration.version, migration.name,
                 datetime.now(UTC).replace(tzinfo=None)),
            )
        applied.append(migration.version)
    return applied
