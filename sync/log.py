"""The ``sync_log`` table: one row per started sync, and the reader the CLI shows.

A sync that has planned writes its row as ``failed`` with :data:`UNFINISHED_REASON`
(:func:`log_started`, committed at once) and turns it into its final status inside the
apply transaction (:func:`log_finished`); so a sync killed in between is visible as
failed. An error the process survives, while planning or applying, is recorded as
``failed`` with the error's message (:func:`log_failure`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from serving.db import ServingDB, utcnow

UNFINISHED_REASON = "started but did not finish (the process stopped or crashed)"
"""The reason of a sync that started and has not finished (or never will)."""

MAX_REASON = 2000
"""Characters of an error message kept in ``sync_log.reason``."""

COLUMNS = ("sync_id", "segment", "as_of", "added", "removed", "unchanged", "status",
           "reason", "started_at", "finished_at", "definition_hash")
"""The columns :func:`sync_log` returns, in order."""


def log_started(
    db: ServingDB, sync_id: str, segment: str, as_of: date, started: datetime,
    definition_hash: str | None,
) -> None:
    """Insert and commit the row of a sync that has started: status ``failed``, reason
    :data:`UNFINISHED_REASON`, until :func:`log_finished` says otherwise."""
    with db.transaction():
        db.execute(
            "INSERT INTO sync_log (sync_id, segment, as_of, status, reason, started_at, "
            "definition_hash) VALUES (?, ?, ?, 'failed', ?, ?, ?)",
            (sync_id, segment, as_of, UNFINISHED_REASON, started, definition_hash),
        )


def log_finished(
    db: ServingDB, sync_id: str, status: str, reason: str, *, added: int, removed: int,
    unchanged: int, finished: datetime,
) -> None:
    """Set the final status, reason (NULL when empty), counts and finish time of the sync's
    row; run it inside the apply transaction so it commits with the changes."""
    db.execute(
        "UPDATE sync_log SET status = ?, reason = ?, added = ?, removed = ?, unchanged = ?, "
        "finished_at = ? WHERE sync_id = ?",
        (status, reason or None, added, removed, unchanged, finished, sync_id),
    )


def log_failure(db: ServingDB, sync_id: str, exc: Exception, *, segment: str, as_of: date,
                started: datetime, definition_hash: str | None) -> None:
    """Record ``exc`` as the reason of the sync's row, ``failed``, with its finish time:
    the row :func:`log_started` wrote, or a new one for a sync that failed while it
    planned. A row that already holds a final status (an error after the serving commit)
    is left as it is.

    Never raises: when the serving database itself is what failed, the row keeps saying
    the sync did not finish (or there is none).
    """
    reason = (exc.message if hasattr(exc, "message") else str(exc)) or type(exc).__name__
    try:
        with db.transaction():
            db.execute(
                "INSERT INTO sync_log (sync_id, segment, as_of, status, reason, started_at, "
                "finished_at, definition_hash) VALUES (?, ?, ?, 'failed', ?, ?, ?, ?) "
                "ON CONFLICT (sync_id) DO UPDATE SET reason = excluded.reason, "
                "finished_at = excluded.finished_at WHERE sync_log.status = 'failed'",
                (sync_id, segment, as_of, reason[:MAX_REASON], started, utcnow(),
                 definition_hash),
            )
    except Exception:  # the serving database itself is what failed
        return


def sync_log(db: ServingDB, segment: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The latest ``sync_log`` rows (newest first), optionally for one segment, as dicts
    keyed by :data:`COLUMNS`."""
    sql = f"SELECT {', '.join(COLUMNS)} FROM sync_log"
    params: tuple[Any, ...] = ()
    if segment is not None:
        sql += " WHERE segment = ?"
        params = (segment,)
    sql += " ORDER BY started_at DESC, sync_id DESC LIMIT ?"
    rows = db.fetchall(sql, (*params, limit))
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]
