"""Writing a segment's members for one day into ``segments.members`` (architecture §5).

``segments.members(segment, as_of, customer_id)`` holds unique rows. Materialising
(segment, D) replaces exactly that segment's rows for D, in one transaction: readers
see the old set or the new one, never a mix, and an error leaves the old rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import duckdb
from sqlglot import exp

from warehouse.db import run, table_exists, transaction

if TYPE_CHECKING:
    import pyarrow as pa

SAMPLE_SIZE = 10


@dataclass(frozen=True)
class MemberStats:
    """Size of a day's members and the change against the latest earlier day."""

    size: int
    previous_day: date | None
    previous_size: int | None
    added: int
    removed: int
    sample: list[int] = field(default_factory=list)

    @property
    def change_ratio(self) -> float | None:
        """``|size - previous_size| / previous_size``; None without a previous non-empty day."""
        if not self.previous_size:
            return None
        return abs(self.size - self.previous_size) / self.previous_size


def is_materialized(con: duckdb.DuckDBPyConnection, segment: str, as_of: date) -> bool:
    """Whether (segment, as_of) was ever materialised (an empty result counts)."""
    if not table_exists(con, "segments", "materializations"):
        return False
    row = con.execute("SELECT count(*) FROM segments.materializations WHERE segment = ? "
                      "AND as_of = ?", [segment, as_of]).fetchone()
    return bool(row and row[0])


def insert_statement(query: exp.Query, *, unique: bool = False) -> exp.Insert:
    """``INSERT INTO segments.members SELECT $segment, $as_of, customer_id FROM (query)``.

    Non-NULL ids, made distinct unless ``unique`` says the query already returns each
    id once (a rule over the wide table: one row per customer per day). The segment
    name and day are bound parameters.
    """
    select = (
        exp.select(exp.Placeholder(this="segment"), exp.Placeholder(this="as_of"),
                   exp.column("customer_id"))
        .from_(query.subquery("q"))
        .where(exp.column("customer_id").is_(exp.null()).not_())
    )
    if not unique:
        select = select.group_by(exp.column("customer_id"))
    return exp.insert(select, exp.table_("members", db="segments"))


def write_members(con: duckdb.DuckDBPyConnection, segment: str, as_of: date,
                  query: exp.Query | None = None, ids: pa.Table | None = None, *,
                  definition_hash: str = "", unique: bool = False) -> MemberStats:
    """Replace (segment, as_of) with the rows of ``query`` (bound to ``$as_of``) or ``ids``.

    ``ids`` is an Arrow table with a ``customer_id`` column (for analysts' SQL run in
    the sandbox). One transaction; returns the stats after the write.
    """
    if (query is None) == (ids is None):
        raise ValueError("give exactly one of query or ids")
    if ids is not None:
        con.execute("SELECT 1").fetchall()  # settle any half-read result before register()
        con.register("segment_ids", ids)
        query = exp.select("customer_id").from_("segment_ids")
    assert query is not None
    try:
        with transaction(con):
            con.execute("DELETE FROM segments.members WHERE segment = ? AND as_of = ?",
                        [segment, as_of])
            size = run(con, insert_statement(query, unique=unique and ids is None), as_of,
                       segment=segment).fetchall()[0][0]
            con.execute("DELETE FROM segments.materializations WHERE segment = ? AND as_of = ?",
                        [segment, as_of])
            con.execute("INSERT INTO segments.materializations VALUES "
                        "(?, ?, ?, ?, current_timestamp)",
                        [segment, as_of, size, definition_hash])
    finally:
        if ids is not None:
            con.unregister("segment_ids")
    return member_stats(con, segment, as_of, size=int(size))


def member_stats(con: duckdb.DuckDBPyConnection, segment: str, as_of: date, *,
                 size: int | None = None) -> MemberStats:
    """Size, change versus the latest earlier materialised day, and a small sample."""
    if size is None:
        size = con.execute("SELECT count(*) FROM segments.members WHERE segment = ? AND "
                           "as_of = ?", [segment, as_of]).fetchone()[0]
    prev = con.execute("SELECT max(as_of) FROM segments.materializations WHERE segment = ? "
                       "AND as_of < ?", [segment, as_of]).fetchone()[0]
    added = removed = 0
    prev_size = None
    if prev is not None:
        prev_size, added, removed = con.execute("""
            WITH cur AS (SELECT customer_id FROM segments.members
                         WHERE segment = $s AND as_of = $d),
                 old AS (SELECT customer_id FROM segments.members
                         WHERE segment = $s AND as_of = $p)
            SELECT count(o.customer_id),
                   count(*) FILTER (WHERE o.customer_id IS NULL),
                   count(*) FILTER (WHERE c.customer_id IS NULL)
            FROM cur c FULL OUTER JOIN old o ON c.customer_id = o.customer_id
        """, {"s": segment, "d": as_of, "p": prev}).fetchone()
    sample = [r[0] for r in con.execute(
        "SELECT customer_id FROM segments.members WHERE segment = ? AND as_of = ? "
        "ORDER BY hash(customer_id) LIMIT ?", [segment, as_of, SAMPLE_SIZE]).fetchall()]
    return MemberStats(size=int(size), previous_day=prev, previous_size=prev_size,
                       added=int(added), removed=int(removed), sample=sample)
