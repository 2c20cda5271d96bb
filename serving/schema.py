"""The ``serving`` migration stream: the tables the segment sync writes (architecture §6).

* ``coupon_eligibility(segment, customer_id, as_of, synced_at)``, PK
  (``segment``, ``customer_id``): the current members of every synced segment. ``as_of``
  is the snapshot day that added the row (the member has been in the segment since that
  synced day); ``synced_at`` is when it was written (UTC).
* ``sync_log(sync_id, segment, as_of, added, removed, unchanged, status, reason,
  started_at, finished_at, definition_hash)``; ``status`` in ``applied``, ``noop``,
  ``blocked``, ``failed``.
* ``sync_state(segment, sync_id, as_of, members, definition_hash, updated_at)``: per
  synced segment, the sync that produced the current ``coupon_eligibility`` rows. It is
  written in the same transaction as those rows, which is what makes the two-database
  sync crash-safe (see ``serving/sync.py``).
"""

from __future__ import annotations

from kequn.migrations import Migration

STREAM = "serving"

SYNC_STATUSES = ("applied", "noop", "blocked", "failed")

_ELIGIBILITY_COLUMNS = """
    segment VARCHAR(200) NOT NULL,
    customer_id BIGINT NOT NULL,
    as_of DATE NOT NULL,
    synced_at TIMESTAMP NOT NULL,
    PRIMARY KEY (segment, customer_id)
"""

_SYNC_LOG = f"""
CREATE TABLE sync_log (
    sync_id VARCHAR(64) NOT NULL PRIMARY KEY,
    segment VARCHAR(200) NOT NULL,
    as_of DATE NOT NULL,
    added BIGINT NOT NULL DEFAULT 0,
    removed BIGINT NOT NULL DEFAULT 0,
    unchanged BIGINT NOT NULL DEFAULT 0,
    status VARCHAR(16) NOT NULL CHECK (status IN ({", ".join(f"'{s}'" for s in SYNC_STATUSES)})),
    reason TEXT,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    definition_hash VARCHAR(128)
)
"""

_SYNC_STATE = """
CREATE TABLE sync_state (
    segment VARCHAR(200) NOT NULL PRIMARY KEY,
    sync_id VARCHAR(64) NOT NULL,
    as_of DATE NOT NULL,
    members BIGINT NOT NULL,
    definition_hash VARCHAR(128),
    updated_at TIMESTAMP NOT NULL
)
"""

SERVING_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "coupon_eligibility, sync_log and sync_state",
        {
            # WITHOUT ROWID: the primary key is the table (one B-tree, faster bulk writes).
            "sqlite": (
                f"CREATE TABLE coupon_eligibility ({_ELIGIBILITY_COLUMNS}) WITHOUT ROWID",
                _SYNC_LOG,
                "CREATE INDEX sync_log_segment ON sync_log (segment, started_at)",
                _SYNC_STATE,
            ),
            "postgresql": (
                f"CREATE TABLE coupon_eligibility ({_ELIGIBILITY_COLUMNS})",
                _SYNC_LOG,
                "CREATE INDEX sync_log_segment ON sync_log (segment, started_at)",
                _SYNC_STATE,
            ),
        },
    ),
)
