"""The ``coupon_economics`` migration stream: campaign states, the ledger and the budget.

* ``campaign_states(campaign, state, submitted_by, activity_approved_by,
  budget_approved_by, definition_hash, updated_at)``: a campaign's approval state
  (``draft → pending_approval → approved → live → ended``); no row reads as ``draft``.
* ``coupon_ledger(entry_id, coupon_id, campaign, loan_id, kind, amount_cents, at,
  request_key)``, append-only (triggers refuse UPDATE and DELETE). ``kind``: ``reserve``
  (issue: the coupon's worst-case reduction, +), ``book`` (confirm: the actual reduction
  for the loan, +), ``release`` (the reservation given back: at confirm, at a reverse
  before confirm, expiry or void, − against ``reserve``), ``reversal`` (a reverse after
  confirm: the booked reduction reversed, − against ``book``). Amounts are positive; the
  kind says which sum an entry adds to or takes from. (Before the reverse after confirm
  existed, a reverse before confirm wrote its release as ``reversal``.)
* ``campaign_budget(campaign, reserved_cents, booked_cents)``: the running sums of the
  ledger per campaign, written in the same transaction as the entries (the issue path
  reads one row instead of summing the ledger). ``reserved + booked`` never exceeds the
  campaign's budget.
* ``coupon_loans(coupon_id, loan_id, context, reduction_cents, at)``: the loan context an
  occupy came with and the coupon's trial reduction on that loan (what confirm books).

Amounts are whole cents (exact on both back ends).
"""

from __future__ import annotations

from kequn.migrations import Migration, apply_migrations
from serving.db import ServingDB

STREAM = "coupon_economics"
STATES = ("draft", "pending_approval", "approved", "live", "ended")
LEDGER_KINDS = ("reserve", "book", "release", "reversal")

_STATES = f"""
CREATE TABLE campaign_states (
    campaign VARCHAR(200) NOT NULL PRIMARY KEY,
    state VARCHAR(20) NOT NULL CHECK (state IN ({", ".join(f"'{s}'" for s in STATES)})),
    submitted_by VARCHAR(200),
    activity_approved_by VARCHAR(200),
    budget_approved_by VARCHAR(200),
    definition_hash VARCHAR(64),
    updated_at TIMESTAMP NOT NULL
)
"""
_LEDGER_COLUMNS = f"""
    coupon_id VARCHAR(40) NOT NULL,
    campaign VARCHAR(200) NOT NULL,
    loan_id VARCHAR(64),
    kind VARCHAR(16) NOT NULL CHECK (kind IN ({", ".join(f"'{k}'" for k in LEDGER_KINDS)})),
    amount_cents BIGINT NOT NULL,
    at TIMESTAMP NOT NULL,
    request_key VARCHAR(200)
"""
_BUDGET = """
CREATE TABLE campaign_budget (
    campaign VARCHAR(200) NOT NULL PRIMARY KEY,
    reserved_cents BIGINT NOT NULL,
    booked_cents BIGINT NOT NULL
)
"""
_LOANS = """
CREATE TABLE coupon_loans (
    coupon_id VARCHAR(40) NOT NULL,
    loan_id VARCHAR(64) NOT NULL,
    context TEXT NOT NULL,
    reduction_cents BIGINT,
    at TIMESTAMP NOT NULL,
    PRIMARY KEY (coupon_id, loan_id)
)
"""
_INDEXES = (
    "CREATE INDEX coupon_ledger_coupon ON coupon_ledger (coupon_id)",
    "CREATE INDEX coupon_ledger_campaign ON coupon_ledger (campaign, kind)",
)

_SQLITE = (
    _STATES,
    "CREATE TABLE coupon_ledger (entry_id INTEGER PRIMARY KEY AUTOINCREMENT,"
    + _LEDGER_COLUMNS + ")",
    _BUDGET,
    _LOANS,
    *_INDEXES,
    "CREATE TRIGGER coupon_ledger_no_update BEFORE UPDATE ON coupon_ledger "
    "BEGIN SELECT RAISE(ABORT, 'coupon_ledger is append-only'); END",
    "CREATE TRIGGER coupon_ledger_no_delete BEFORE DELETE ON coupon_ledger "
    "BEGIN SELECT RAISE(ABORT, 'coupon_ledger is append-only'); END",
)
_POSTGRESQL = (
    _STATES,
    "CREATE TABLE coupon_ledger (entry_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    + _LEDGER_COLUMNS + ")",
    _BUDGET,
    _LOANS,
    *_INDEXES,
    "CREATE FUNCTION coupon_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'coupon_ledger is append-only'; END $$",
    "CREATE TRIGGER coupon_ledger_append_only BEFORE UPDATE OR DELETE ON coupon_ledger "
    "FOR EACH ROW EXECUTE FUNCTION coupon_ledger_append_only()",
)

ECONOMICS_MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "campaign states, coupon ledger, budget, loan contexts",
              {"sqlite": _SQLITE, "postgresql": _POSTGRESQL}),
)


def migrate(db: ServingDB) -> list[int]:
    """Bring the ``coupon_economics`` and ``audit`` streams up to date on ``db``."""
    from serving.audit import migrate as migrate_audit

    migrate_audit(db)
    return apply_migrations(db, STREAM, ECONOMICS_MIGRATIONS)
