"""The warehouse's record of what the last sync of each segment wrote to serving.

``sync.applied(segment, customer_id)`` holds the ids serving holds; ``sync.marker``
names the sync (and day, size) they belong to. A run trusts ``sync.applied`` as its diff
base only when the marker names the sync that ``sync_state`` says serving holds
(:func:`sync.plan.choose_base`). The tables are created by the warehouse migration
(:mod:`warehouse.schema`); this module only reads and writes them, each update in one
DuckDB transaction.
"""

from __future__ import annotations

import duckdb

from kequn.tables import SYNC_APPLIED, SYNC_MARKER, qualified
from serving.db import utcnow
from sync.diff import Diff, TempTables
from sync.plan import State
from warehouse.db import table_exists, transaction

_APPLIED = qualified(SYNC_APPLIED)
_MARKER = qualified(SYNC_MARKER)


def tracking_exists(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the warehouse has both tracking tables (a migrated warehouse does)."""
    return table_exists(con, *SYNC_APPLIED) and table_exists(con, *SYNC_MARKER)


def read_marker(con: duckdb.DuckDBPyConnection, segment: str) -> State | None:
    """The state the tracked ids of ``segment`` belong to; None when there is no marker
    (or no marker table, in a read-only warehouse that was never migrated)."""
    if not table_exists(con, *SYNC_MARKER):
        return None
    rows = con.execute(
        f"SELECT sync_id, as_of, members FROM {_MARKER} WHERE segment = ?", [segment]
    ).fetchall()
    if not rows:
        return None
    row = rows[0]
    return State(row[0], row[1], int(row[2] or 0))


def update_tracking(
    con: duckdb.DuckDBPyConnection, segment: str, temp: TempTables, diff: Diff, *,
    rebuild: bool, apply_delta: bool, state: State | None, definition_hash: str | None,
) -> None:
    """Make the warehouse tracking say what serving holds now, under ``state``, in one
    DuckDB transaction.

    With ``rebuild`` the tracked ids are first replaced by the base the plan used
    (``temp.base``: what serving held, read back from it); with ``apply_delta`` the
    added/removed ids (``temp.adds``, ``temp.removes``) follow. The marker is rewritten
    last (deleted when ``state`` is None).

    Inserts with nothing to insert are skipped on purpose: in DuckDB 2.0.0 an INSERT of
    zero rows followed, in the same transaction, by an INSERT of 122,880+ rows leaves the
    new rows invisible to this connection's scans after the commit.
    """
    with transaction(con):
        if rebuild:
            con.execute(f"DELETE FROM {_APPLIED} WHERE segment = ?", [segment])
            if diff.base:
                con.execute(
                    f"INSERT INTO {_APPLIED} (segment, customer_id) "
                    f"SELECT ?, customer_id FROM {temp.base}",
                    [segment],
                )
        if apply_delta:
            if diff.removed:
                con.execute(
                    f"DELETE FROM {_APPLIED} WHERE segment = ? AND customer_id IN "
                    f"(SELECT customer_id FROM {temp.removes})",
                    [segment],
                )
            if diff.added:
                con.execute(
                    f"INSERT INTO {_APPLIED} (segment, customer_id) "
                    f"SELECT ?, customer_id FROM {temp.adds}",
                    [segment],
                )
        _write_marker(con, segment, state, definition_hash)


def update_marker(
    con: duckdb.DuckDBPyConnection, segment: str, state: State | None,
    definition_hash: str | None,
) -> None:
    """Rewrite only the marker of ``segment`` (the tracked ids stay), in one transaction:
    for a sync that moved the synced day without changing rows."""
    with transaction(con):
        _write_marker(con, segment, state, definition_hash)


def _write_marker(
    con: duckdb.DuckDBPyConnection, segment: str, state: State | None,
    definition_hash: str | None,
) -> None:
    con.execute(f"DELETE FROM {_MARKER} WHERE segment = ?", [segment])
    if state is not None:
        con.execute(
            f"INSERT INTO {_MARKER} (segment, sync_id, as_of, members, definition_hash, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            [segment, state.sync_id, state.as_of, state.members, definition_hash, utcnow()],
        )
