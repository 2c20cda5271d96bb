"""The DuckDB side of planning a sync: which ids are added and removed, computed in the warehouse.

The base (what serving holds: the warehouse's ``sync.applied`` ids, or
``coupon_eligibility`` read back with :func:`read_back`) and the day's
``segments.members`` are anti-joined into temporary tables (:class:`TempTables`, named
by us and unique per sync); :func:`compute_diff` returns the counts and a sample, and
:func:`id_chunks` streams the ids to the serving writes in chunks of :data:`CHUNK`.
Only the difference leaves DuckDB.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import duckdb

from kequn.tables import MATERIALIZATIONS, MEMBERS, SYNC_APPLIED, qualified
from serving.db import ServingDB
from warehouse.db import table_exists

CHUNK = 100_000
"""Ids per chunk: per serving statement (a JSON array on SQLite, a BIGINT[] on
PostgreSQL) and per fetch when reading ``coupon_eligibility`` back."""

SAMPLE = 10
"""How many added/removed ids a diff keeps for display."""


class TempTables:
    """Names of one sync's DuckDB temporary tables (unique per instance).

    ``base``: what serving holds; ``adds`` / ``removes``: the delta, ordered by id;
    ``readback``: the name under which read-back ids are registered for a moment.
    """

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:12]
        self.base = f"kq_sync_base_{tag}"
        self.adds = f"kq_sync_adds_{tag}"
        self.removes = f"kq_sync_removes_{tag}"
        self.readback = f"kq_sync_readback_{tag}"

    def drop(self, con: duckdb.DuckDBPyConnection) -> None:
        """Drop the temporary tables (those that exist)."""
        for name in (self.base, self.adds, self.removes):
            con.execute(f"DROP TABLE IF EXISTS temp.{name}")


@dataclass(frozen=True)
class Diff:
    """The counts of a diff and a sample of the ids (the ids stay in the temp tables).

    ``base``: members serving holds; ``target``: the day's distinct members
    (``base - removed + added``).
    """

    target: int
    base: int
    added: int
    removed: int
    sample_added: tuple[int, ...]
    sample_removed: tuple[int, ...]

    @property
    def unchanged(self) -> int:
        """Members both in the base and in the day's snapshot."""
        return self.target - self.added


def members_table_exists(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the warehouse has the ``segments.members`` table the sync reads."""
    return table_exists(con, *MEMBERS)


def built(con: duckdb.DuckDBPyConnection, segment: str, as_of: date) -> bool | None:
    """Whether the segments build recorded (segment, as_of) in ``segments.materializations``
    (an empty segment counts as built); None when that table does not exist."""
    if not table_exists(con, *MATERIALIZATIONS):
        return None
    rows = con.execute(
        f"SELECT count(*) FROM {qualified(MATERIALIZATIONS)} WHERE segment = ? AND as_of = ?",
        [segment, as_of],
    ).fetchall()
    return bool(rows[0][0])


def read_back(
    db: ServingDB, con: duckdb.DuckDBPyConnection, segment: str, temp: TempTables
) -> None:
    """Copy the segment's current ``coupon_eligibility`` ids into the temp table
    ``temp.base`` (fetched :data:`CHUNK` rows at a time)."""
    import numpy as np  # only a read-back needs them (a sync whose fingerprints agree has none)
    import pyarrow as pa

    cursor = db.execute(
        "SELECT customer_id FROM coupon_eligibility WHERE segment = ?", (segment,)
    )
    parts: list[np.ndarray] = []
    while rows := cursor.fetchmany(CHUNK):
        parts.append(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))
    ids = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    con.register(temp.readback, pa.table({"customer_id": ids}))
    try:
        con.execute(
            f"CREATE TEMP TABLE {temp.base} AS SELECT customer_id FROM {temp.readback}"
        )
    finally:
        con.unregister(temp.readback)


_TARGET_SQL = (
    f"SELECT customer_id FROM {qualified(MEMBERS)} "
    "WHERE segment = ? AND as_of = ? AND customer_id IS NOT NULL"
)


def compute_diff(
    con: duckdb.DuckDBPyConnection, segment: str, as_of: date, temp: TempTables, *,
    from_readback: bool,
) -> Diff:
    """The added and removed ids of ``segment`` on ``as_of`` into ``temp.adds`` and
    ``temp.removes``, plus counts and samples.

    The base is ``temp.base`` when ``from_readback`` (filled by :func:`read_back`), else
    it is created here from ``sync.applied``. The base is unique by construction; the
    day's members are deduplicated only where it matters (the added ids), so the
    snapshot's distinct size is ``base - removed + added`` without a DISTINCT over all
    of it.
    """
    if not from_readback:
        con.execute(
            f"CREATE TEMP TABLE {temp.base} AS SELECT customer_id "
            f"FROM {qualified(SYNC_APPLIED)} WHERE segment = ?",
            [segment],
        )
    con.execute(
        f"CREATE TEMP TABLE {temp.adds} AS SELECT DISTINCT t.customer_id "
        f"FROM ({_TARGET_SQL}) t ANTI JOIN {temp.base} b ON t.customer_id = b.customer_id "
        "ORDER BY 1",
        [segment, as_of],
    )
    con.execute(
        f"CREATE TEMP TABLE {temp.removes} AS SELECT b.customer_id FROM {temp.base} b "
        f"ANTI JOIN ({_TARGET_SQL}) t ON t.customer_id = b.customer_id ORDER BY 1",
        [segment, as_of],
    )
    ((base, added, removed),) = con.execute(
        f"SELECT (SELECT count(*) FROM {temp.base}), (SELECT count(*) FROM {temp.adds}), "
        f"(SELECT count(*) FROM {temp.removes})"
    ).fetchall()
    sample_added = tuple(
        r[0] for r in con.execute(f"SELECT customer_id FROM {temp.adds} LIMIT {SAMPLE}").fetchall()
    )
    sample_removed = tuple(
        r[0]
        for r in con.execute(f"SELECT customer_id FROM {temp.removes} LIMIT {SAMPLE}").fetchall()
    )
    target = int(base) - int(removed) + int(added)
    return Diff(target, int(base), int(added), int(removed), sample_added, sample_removed)


def id_chunks(
    con: duckdb.DuckDBPyConnection, table: str, size: int | None = None
) -> Iterator[list[int]]:
    """The ids of the temp table ``table``, in ascending order, as lists of at most
    ``size`` (default :data:`CHUNK`) ints; lazily, so the ids never all sit in Python.

    The query's result stays open on ``con`` until the iterator is exhausted or closed:
    close it (``contextlib.closing``) when stopping early, or ``con`` refuses the next
    statement.
    """
    reader = con.sql(f"SELECT customer_id FROM {table} ORDER BY 1").to_arrow_reader(
        size or CHUNK
    )
    try:
        for batch in reader:
            if batch.num_rows:
                yield batch.column(0).to_pylist()
    finally:
        reader.close()


_FINGERPRINT = (
    "count(*), coalesce(sum(customer_id % 2147483629), 0), "
    "coalesce(sum((customer_id % 2147483629) * 48271 % 2147483647), 0)"
)
"""Count and two order-independent sums of a mix of each id: equal sets give equal
fingerprints; a deleted, added or changed row almost surely changes it. The same integer
arithmetic (``%`` and ``*`` within BIGINT) in DuckDB, SQLite and PostgreSQL."""

Fingerprint = tuple[int, int, int]


def serving_fingerprint(db: ServingDB, segment: str) -> Fingerprint:
    """The fingerprint of the segment's ``coupon_eligibility`` rows as they are now."""
    row = db.fetchone(f"SELECT {_FINGERPRINT} FROM coupon_eligibility WHERE segment = ?",
                      (segment,))
    return (int(row[0]), int(row[1]), int(row[2])) if row else (0, 0, 0)


def tracking_fingerprint(con: duckdb.DuckDBPyConnection, segment: str) -> Fingerprint:
    """The fingerprint of what the last sync wrote (``sync.applied``)."""
    row = con.execute(f"SELECT {_FINGERPRINT} FROM {qualified(SYNC_APPLIED)} "
                      "WHERE segment = ?", [segment]).fetchall()[0]
    return (int(row[0]), int(row[1]), int(row[2]))


def snapshot_definition_hash(con: duckdb.DuckDBPyConnection, segment: str,
                             as_of: date) -> str | None:
    """The hash of the definition that built (segment, as_of), as the build recorded it
    in ``segments.materializations`` (None when unknown)."""
    if not table_exists(con, *MATERIALIZATIONS):
        return None
    rows = con.execute(
        f"SELECT definition_hash FROM {qualified(MATERIALIZATIONS)} WHERE segment = ? "
        "AND as_of = ? ORDER BY materialized_at DESC LIMIT 1", [segment, as_of]).fetchall()
    return rows[0][0] or None if rows else None
