"""The serving-side writes of a sync, on SQLite and PostgreSQL alike.

Inside the caller's serving transaction (:meth:`serving.db.ServingDB.transaction`):
remove and add ``coupon_eligibility`` rows in bulk, one statement per chunk of ids (a
JSON array expanded by ``json_each`` on SQLite, a ``BIGINT[]`` unnested on PostgreSQL,
bound as one parameter either way), and record in ``sync_state`` which sync produced the
rows. Also: reading ``sync_state`` (``FOR UPDATE`` on PostgreSQL, to re-check it in the
apply transaction). The caller gives the apply transaction a larger SQLite page cache
(:meth:`serving.db.ServingDB.bulk_cache`).

No DuckDB here: the ids arrive as an iterable of chunks (:func:`sync.diff.id_chunks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime

from serving.db import ServingDB
from sync.plan import State


def _in_transaction(db: ServingDB) -> None:
    if not db.in_transaction:
        raise RuntimeError(
            "sync writes belong inside the apply transaction (with db.transaction():)"
        )


def serving_state(db: ServingDB, segment: str, *, for_update: bool = False) -> State | None:
    """The ``sync_state`` row of ``segment`` (None when nothing was synced yet).

    ``for_update`` locks the row on PostgreSQL until the transaction ends (SQLite's
    ``BEGIN IMMEDIATE`` already holds the write lock).
    """
    sql = "SELECT sync_id, as_of, members FROM sync_state WHERE segment = ?"
    if for_update and db.dialect == "postgresql":
        sql += " FOR UPDATE"
    row = db.fetchone(sql, (segment,))
    if row is None:
        return None
    as_of = row[1] if isinstance(row[1], date) else date.fromisoformat(str(row[1]))
    return State(str(row[0]), as_of, int(row[2]))


def remove_members(db: ServingDB, segment: str, chunks: Iterable[Sequence[int]]) -> None:
    """Delete the ``coupon_eligibility`` rows of ``segment`` for each chunk of ids (one
    statement per chunk), inside the caller's transaction."""
    _in_transaction(db)
    sql = (
        "DELETE FROM coupon_eligibility WHERE segment = ? "
        f"AND customer_id IN ({db.ids_source()})"
    )
    for ids in chunks:
        db.execute(sql, (segment, db.ids_param(ids)))


def add_members(
    db: ServingDB, segment: str, as_of: date, synced_at: datetime,
    chunks: Iterable[Sequence[int]],
) -> None:
    """Insert a ``coupon_eligibility`` row per id (``as_of``: the day that added it;
    ``synced_at``: now), one statement per chunk, inside the caller's transaction.

    An id the segment already holds violates the primary key: the driver's integrity
    error (:func:`serving.db.integrity_errors`) propagates.
    """
    _in_transaction(db)
    sql = (
        "INSERT INTO coupon_eligibility (segment, customer_id, as_of, synced_at) "
        f"SELECT ?, ids.value, ?, ? FROM ({db.ids_source()}) AS ids"
    )
    for ids in chunks:
        db.execute(sql, (segment, as_of, synced_at, db.ids_param(ids)))


def record_sync(
    db: ServingDB, segment: str, sync_id: str, as_of: date, members: int,
    definition_hash: str | None, now: datetime,
) -> None:
    """Make ``sync_state`` say that sync ``sync_id`` of day ``as_of`` produced the
    segment's ``members`` rows (insert or replace), inside the caller's transaction."""
    _in_transaction(db)
    db.execute(
        "INSERT INTO sync_state (segment, sync_id, as_of, members, definition_hash, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (segment) DO UPDATE SET "
        "sync_id = excluded.sync_id, as_of = excluded.as_of, members = excluded.members, "
        "definition_hash = excluded.definition_hash, updated_at = excluded.updated_at",
        (segment, sync_id, as_of, members, definition_hash, now),
    )


def move_synced_day(
    db: ServingDB, segment: str, as_of: date, definition_hash: str | None, now: datetime
) -> None:
    """Set the synced day of ``segment`` in ``sync_state`` to ``as_of`` (the rows, and the
    sync that produced them, stay), inside the caller's transaction."""
    _in_transaction(db)
    db.execute(
        "UPDATE sync_state SET as_of = ?, definition_hash = ?, updated_at = ? "
        "WHERE segment = ?",
        (as_of, definition_hash, now, segment),
    )
