"""The ``issuance`` migration stream: coupons, their history, counters and requests.

Tables (timestamps are naive UTC, days are Asia/Shanghai business days):

* ``coupons``: one row per issued coupon, its current ``status`` and the campaign
  terms it was issued under (template, validity, stacking, failed-drawdown policy,
  channels, lease length), so a coupon keeps working if its campaign file changes.
* ``coupon_history``: append-only, one row per transition, ``seq`` = the coupon's version
  after it (the issue itself is the coupon row's creation, version 1, with its
  ``issued_at``: not a transition, and one page less per issue); triggers refuse UPDATE
  and DELETE.
* ``issuance_counters(campaign, bucket, issued)``: per campaign, the lifetime count
  (``bucket = 'total'``, also the campaign's lock row: every issue locks it first, which
  serialises a campaign's issues on PostgreSQL; on SQLite ``BEGIN IMMEDIATE`` already
  serialises writers) and one row per Asia/Shanghai day (``bucket = 'YYYY-MM-DD'``),
  written in the same transaction as the coupon. The per-customer count is read from
  ``coupons`` (index ``coupons_customer``) under the same locks. One small table keeps
  an issue's write set to few pages, which is what bounds SQLite's commit rate.
* ``issuance_requests``: one row per idempotency key with the first result.
* ``coupon_loan_closed(coupon_id, loan_id)``: a loan whose try on a coupon is over
  (reversed, or its lease expired); a later occupy by that loan is refused (TCC: an
  empty rollback is recorded, the dangling try is refused).
"""

from __future__ import annotations

from issuance.states import STATES
from kequn.migrations import Migration, apply_migrations
from serving.db import ServingDB

STREAM = "issuance"

_STATUS_CHECK = ", ".join(f"'{s}'" for s in STATES)

_COUPONS = f"""
CREATE TABLE coupons (
    coupon_id VARCHAR(40) NOT NULL PRIMARY KEY,
    campaign VARCHAR(200) NOT NULL,
    customer_id BIGINT NOT NULL,
    status VARCHAR(16) NOT NULL CHECK (status IN ({_STATUS_CHECK})),
    template_kind VARCHAR(32) NOT NULL,
    template_value VARCHAR(32) NOT NULL,
    exclusive SMALLINT NOT NULL,
    on_failed_drawdown VARCHAR(16) NOT NULL,
    channels VARCHAR(64) NOT NULL,
    lease_seconds INTEGER NOT NULL,
    issued_at TIMESTAMP NOT NULL,
    issue_day DATE NOT NULL,
    valid_from TIMESTAMP NOT NULL,
    valid_until TIMESTAMP NOT NULL,
    loan_id VARCHAR(64),
    lease_until TIMESTAMP,
    version INTEGER NOT NULL,
    updated_at TIMESTAMP NOT NULL
)
"""

_HISTORY = f"""
CREATE TABLE coupon_history (
    coupon_id VARCHAR(40) NOT NULL,
    seq INTEGER NOT NULL,
    from_status VARCHAR(16) CHECK (from_status IN ({_STATUS_CHECK})),
    to_status VARCHAR(16) NOT NULL CHECK (to_status IN ({_STATUS_CHECK})),
    at TIMESTAMP NOT NULL,
    loan_id VARCHAR(64),
    reason VARCHAR(64) NOT NULL,
    request_key VARCHAR(200),
    PRIMARY KEY (coupon_id, seq)
)
"""

_REQUESTS = """
CREATE TABLE issuance_requests (
    idempotency_key VARCHAR(200) NOT NULL PRIMARY KEY,
    operation VARCHAR(16) NOT NULL,
    fingerprint VARCHAR(600) NOT NULL,
    ok SMALLINT NOT NULL,
    reason VARCHAR(64),
    coupon_id VARCHAR(40),
    status VARCHAR(16),
    created_at TIMESTAMP NOT NULL
)
"""

_COUNTERS = """
CREATE TABLE issuance_counters (
    campaign VARCHAR(200) NOT NULL,
    bucket VARCHAR(10) NOT NULL,
    issued BIGINT NOT NULL,
    PRIMARY KEY (campaign, bucket)
)
"""

_CLOSED = """
CREATE TABLE coupon_loan_closed (
    coupon_id VARCHAR(40) NOT NULL,
    loan_id VARCHAR(64) NOT NULL,
    reason VARCHAR(64) NOT NULL,
    closed_at TIMESTAMP NOT NULL,
    PRIMARY KEY (coupon_id, loan_id)
)
"""

_INDEXES = (
    "CREATE INDEX coupons_customer ON coupons (customer_id, campaign, status)",
    "CREATE INDEX coupons_loan ON coupons (loan_id) WHERE loan_id IS NOT NULL",
    "CREATE INDEX coupons_lease ON coupons (lease_until) WHERE status = 'occupied'",
)
# PostgreSQL only: on SQLite every index an issue writes is one more WAL page per commit
# (the commit rate is bounded by those pages), so the expiry job scans there instead,
# outside the write transaction.
_PG_VALIDITY_INDEX = (
    "CREATE INDEX coupons_unused_validity ON coupons (valid_until) WHERE status = 'unused'"
)


def _without_rowid(ddl: str) -> str:
    return ddl.rstrip() + " WITHOUT ROWID"


_SQLITE = (
    _without_rowid(_COUPONS),
    _without_rowid(_HISTORY),
    _without_rowid(_REQUESTS),
    _without_rowid(_COUNTERS),
    _without_rowid(_CLOSED),
    *_INDEXES,
    "CREATE TRIGGER coupon_history_no_update BEFORE UPDATE ON coupon_history "
    "BEGIN SELECT RAISE(ABORT, 'coupon_history is append-only'); END",
    "CREATE TRIGGER coupon_history_no_delete BEFORE DELETE ON coupon_history "
    "BEGIN SELECT RAISE(ABORT, 'coupon_history is append-only'); END",
)

_POSTGRESQL = (
    _COUPONS,
    _HISTORY,
    _REQUESTS,
    _COUNTERS,
    _CLOSED,
    *_INDEXES,
    _PG_VALIDITY_INDEX,
    "CREATE FUNCTION coupon_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'coupon_history is append-only'; END $$",
    "CREATE TRIGGER coupon_history_append_only BEFORE UPDATE OR DELETE ON coupon_history "
    "FOR EACH ROW EXECUTE FUNCTION coupon_history_append_only()",
)

ISSUANCE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "coupons, history, counters, requests and closed tries",
        {"sqlite": _SQLITE, "postgresql": _POSTGRESQL},
    ),
)


def migrate(db: ServingDB) -> list[int]:
    """Bring the ``issuance`` stream up to date on ``db``; the versions applied now.

    The ``coupon_economics`` and ``audit`` streams (ledger, budget, approval states, audit
    log) are brought up to date too."""
    from issuance.economics_schema import migrate as migrate_economics

    applied = apply_migrations(db, STREAM, ISSUANCE_MIGRATIONS)
    migrate_economics(db)
    return applied
