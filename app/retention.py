"""Retention: prune tag and segment snapshots older than ``Settings.retention_days``.

A snapshot is one business day of ``segments.members`` (per segment) or of the tag tables
(``tags.customer_tags``, and the tag source tables ``tags._src_<group>`` that versions
before the one-query build stored). Those older than
``as_of - retention_days`` are deleted in one warehouse transaction, except the ones
something still refers to. What refers to a snapshot is a list of :data:`REFERRERS`, each
a small function returning :class:`Reference` rows; adding one (a rule order, an audit)
is one function appended there:

* ``sync_marker``: the snapshot each segment's last sync wrote (warehouse ``sync.marker``);
* ``sync_state``: the snapshot ``coupon_eligibility`` currently holds (serving
  ``sync_state``);
* ``rule_orders``: every day a rule order was decided on (serving ``rule_orders``, when
  the rules engine is installed): those days are kept for every segment.

A kept segment snapshot keeps the tag snapshot of its day too (the segment was computed
from it). ``segments.materializations`` and ``segments.history`` (one small row per
segment and day) are never pruned, so sizes and entered/left stay visible for every day.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING

from kequn.tables import CUSTOMER_TAGS, MEMBERS, SYNC_MARKER, TAGS_SCHEMA, qualified

if TYPE_CHECKING:
    import duckdb

    from serving.db import ServingDB


@dataclass(frozen=True)
class Reference:
    """A snapshot something still needs: ``segment`` None means every segment of the day."""

    as_of: date
    segment: str | None
    by: str


Referrer = Callable[["duckdb.DuckDBPyConnection", "ServingDB | None"], Iterable[Reference]]


def _sync_marker(con: duckdb.DuckDBPyConnection, db: ServingDB | None) -> list[Reference]:
    from warehouse.db import table_exists

    if not table_exists(con, *SYNC_MARKER):
        return []
    rows = con.execute(f"SELECT segment, as_of FROM {qualified(SYNC_MARKER)} "
                       "WHERE as_of IS NOT NULL").fetchall()
    return [Reference(as_of, segment, "sync.marker") for segment, as_of in rows]


def _sync_state(con: duckdb.DuckDBPyConnection, db: ServingDB | None) -> list[Reference]:
    if db is None or not db.has_table("sync_state"):
        return []
    return [Reference(_day(as_of), segment, "sync_state")
            for segment, as_of in db.fetchall("SELECT segment, as_of FROM sync_state")]


def _rule_orders(con: duckdb.DuckDBPyConnection, db: ServingDB | None) -> list[Reference]:
    if db is None or not db.has_table("rule_orders"):
        return []
    # rule_runs: one row per write of a rule's day (a million orders may share it)
    table = "rule_runs" if db.has_table("rule_runs") else "rule_orders"
    return [Reference(_day(as_of), None, "rule_orders")
            for (as_of,) in db.fetchall(f"SELECT DISTINCT as_of FROM {table}")]


def _day(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


REFERRERS: list[tuple[str, Referrer]] = [
    ("sync_marker", _sync_marker),
    ("sync_state", _sync_state),
    ("rule_orders", _rule_orders),
]
"""Everything that can still refer to a snapshot; append to extend."""


@dataclass
class PruneReport:
    """What a prune removed and what it kept although old."""

    cutoff: date
    """Snapshots with ``as_of < cutoff`` were candidates."""
    deleted: dict[str, int] = field(default_factory=dict)
    """Rows deleted per table."""
    kept: list[Reference] = field(default_factory=list)
    """Old snapshots kept because something refers to them."""


def cutoff_day(as_of: date, retention_days: int) -> date:
    """The oldest day kept: ``retention_days`` days ending with ``as_of``.

    >>> cutoff_day(date(2026, 3, 31), 90)
    datetime.date(2026, 1, 1)
    """
    return as_of - timedelta(days=retention_days - 1)


def prune_snapshots(con: duckdb.DuckDBPyConnection, db: ServingDB | None, *, as_of: date,
                    retention_days: int) -> PruneReport:
    """Delete snapshots older than ``retention_days`` days before ``as_of`` (see module).

    One warehouse transaction: a failure deletes nothing.
    """
    from warehouse.db import insert_rows, table_exists, transaction

    report = PruneReport(cutoff_day(as_of, retention_days))
    references = [ref for _, referrer in REFERRERS for ref in referrer(con, db)]
    report.kept = sorted({r for r in references if r.as_of < report.cutoff},
                         key=lambda r: (r.as_of, r.segment or "", r.by))
    pairs = sorted({(r.segment, r.as_of) for r in references if r.segment is not None})
    all_segment_days = sorted({r.as_of for r in references if r.segment is None})
    tag_days = sorted({r.as_of for r in references})
    tag_tables = [qualified(CUSTOMER_TAGS)] + [
        f"{TAGS_SCHEMA}.{name}" for (name,) in con.execute(
            "SELECT table_name FROM information_schema.columns WHERE table_schema = ? "
            "AND column_name = 'as_of' AND table_name LIKE '\\_src\\_%' ESCAPE '\\' "
            "ORDER BY table_name", [TAGS_SCHEMA]).fetchall()]
    with transaction(con):
        con.execute("CREATE OR REPLACE TEMP TABLE _keep_pairs (segment VARCHAR, as_of DATE)")
        con.execute("CREATE OR REPLACE TEMP TABLE _keep_days (as_of DATE)")
        con.execute("CREATE OR REPLACE TEMP TABLE _keep_tag_days (as_of DATE)")
        insert_rows(con, "_keep_pairs", pairs)
        insert_rows(con, "_keep_days", [[d] for d in all_segment_days])
        insert_rows(con, "_keep_tag_days", [[d] for d in tag_days])
        if table_exists(con, *MEMBERS):
            report.deleted[qualified(MEMBERS)] = _count(con.execute(
                f"DELETE FROM {qualified(MEMBERS)} m WHERE m.as_of < ? "
                "AND m.as_of NOT IN (SELECT as_of FROM _keep_days) "
                "AND NOT EXISTS (SELECT 1 FROM _keep_pairs k "
                "WHERE k.segment = m.segment AND k.as_of = m.as_of)", [report.cutoff]))
        for table in tag_tables:
            if table_exists(con, *table.split(".")):
                report.deleted[table] = _count(con.execute(
                    f"DELETE FROM {table} WHERE as_of < ? "
                    "AND as_of NOT IN (SELECT as_of FROM _keep_tag_days)", [report.cutoff]))
        for temp in ("_keep_pairs", "_keep_days", "_keep_tag_days"):
            con.execute(f"DROP TABLE {temp}")
    return report


def _count(cursor: duckdb.DuckDBPyConnection) -> int:
    rows = cursor.fetchall()
    return int(rows[0][0]) if rows else 0
