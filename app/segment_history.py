"""Each segment's size, entered and left per business day: ``segments.history``.

One row per (segment, as_of), written to the warehouse when the segment is built on
either engine (replacing the day's row): ``size``, ``entered`` (members that were not
members on ``previous_day``), ``exited`` (members of ``previous_day`` that are not
members now; "left" is a reserved word in SQL), ``previous_day`` (the latest earlier
built day, NULL for the first).
Rows are tiny and never pruned (:mod:`app.retention` prunes members, not history), so
the trend survives the members it was computed from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from kequn.tables import HISTORY, qualified

if TYPE_CHECKING:
    import duckdb

    from segments.materialize import MemberStats


@dataclass(frozen=True)
class HistoryRow:
    """One segment's day."""

    as_of: date
    size: int
    entered: int
    exited: int
    previous_day: date | None


def history_row(as_of: date, stats: MemberStats) -> HistoryRow:
    """The history row of a build's statistics, on either engine (the DuckDB build's from
    the warehouse, the Spark build's from the lake's members of ``as_of`` and the previous
    built day)."""
    return HistoryRow(as_of, stats.size, stats.added, stats.removed, stats.previous_day)


def record_history(con: duckdb.DuckDBPyConnection, segment: str, row: HistoryRow) -> None:
    """Replace ``segment``'s row for ``row.as_of`` (one transaction)."""
    from warehouse.db import transaction

    table = qualified(HISTORY)
    with transaction(con):
        con.execute(f"DELETE FROM {table} WHERE segment = ? AND as_of = ?", [segment, row.as_of])
        con.execute(f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?)",
                    [segment, row.as_of, row.size, row.entered, row.exited, row.previous_day])


def read_history(con: duckdb.DuckDBPyConnection, segment: str,
                 days: int | None = None) -> list[HistoryRow]:
    """``segment``'s rows, oldest first (the last ``days`` of them when given)."""
    from warehouse.db import table_exists

    if not table_exists(con, *HISTORY):
        return []
    rows = con.execute(
        f"SELECT as_of, size, entered, exited, previous_day FROM {qualified(HISTORY)} "
        "WHERE segment = ? ORDER BY as_of DESC LIMIT ?", [segment, days or 1_000_000]
    ).fetchall()
    return [HistoryRow(*row) for row in reversed(rows)]
