"""Issue, occupy, confirm, reverse and expire coupons: one transaction per request.

:class:`Issuer` is the whole public API. Every request carries an idempotency key:
the same key returns the first result (``Outcome.replayed``), the same key with a
different request raises :class:`~issuance.outcome.IdempotencyConflict`. Refusals are
results too (``ok=False`` with a ``reason``) and are recorded under their key, except
those that only say the campaign had no room or was not live
(:data:`issuance.limits.NOT_RECORDED`): sent again, such a request is decided again.

Concurrency. On SQLite each request's ``BEGIN IMMEDIATE`` serialises writers. On
PostgreSQL every request first takes a transaction-scoped advisory lock on its
idempotency key, so two requests with one key (whatever their operations) run one after
the other and the second replays or refuses the first's result. An issue then takes its
campaign's advisory lock shared (a concurrent submit, launch or end takes it exclusive
and waits; a campaign that is not live issues nothing), an advisory lock on the customer
(so the per-customer and exclusive-stacking checks hold, across campaigns too), and last
its campaign's ``issuance_counters`` rows: the one-statement path (the server function
``kequn_issue``, :mod:`issuance.schema`) raises each counter only while it is under its
limit, so the hot rows are held for two updates and the commit; a transaction
path (a budgeted campaign, the batch) locks the total row ``FOR UPDATE`` before reading
it. occupy/confirm/reverse lock the coupon row and, for an occupy, the loan. Every path,
the batch (:mod:`issuance.batch`) included, takes its locks in this one global order
(:mod:`issuance.locks`: keys, the campaign, customers in ascending lock order, the
campaign's counter rows, the coupon, the loan), so requests cannot deadlock.

Time comes from the injected :class:`~issuance.clock.Clock`; expiry is also enforced
when a coupon is read or touched (an ended lease releases the coupon, a coupon past its
validity reads as ``expired``), not only by the scheduled expiry job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from issuance import ledger, locks
from issuance import outcome as why
from issuance.approval import live_refusal
from issuance.batch import issue_each
from issuance.clock import Clock, SystemClock, business_day, from_db, to_db
from issuance.limits import BUDGET_EXHAUSTED, NOT_RECORDED, Snapshot, refusal
from issuance.outcome import Outcome
from issuance.states import EXPIRED, OCCUPIED, UNUSED, USED, VOIDED
from issuance.store import (
    REPLAY_FROM,
    REPLAY_SELECT,
    Coupon,
    Request,
    close_try,
    closed_try,
    coupon_id_for,
    coupons_where,
    interpret_replay,
    move,
    move_many,
    read_coupon,
    record,
    replay,
    replay_params,
)
from kequn.errors import ExecutionError, Location
from project.campaign import Campaign, get_campaign
from project.scope import LOAN_OUT_OF_BOUNDS, LoanContext, scope_refusal
from project.trial import TrialError, repayment_plan
from serving import audit
from serving.db import ServingDB, integrity_errors, pg_text

T = TypeVar("T")

SQLITE_WAL_AUTOCHECKPOINT = 10_000

# One statement reads everything an issue decides on: the key's first result (columns
# 0-7, see issuance.store.REPLAY_SELECT), then the counters and facts of the Snapshot.
# The conflict test is an aggregate over the customer's coupons, found by customer only
# (as in kequn_issue since issuance migration 8): its ORs of status and validity are
# never conditions a planner could answer from other indexes.
_SNAPSHOT = REPLAY_SELECT + """,
  (SELECT issued FROM issuance_counters WHERE campaign = ? AND bucket = 'total'),
  (SELECT issued FROM issuance_counters WHERE campaign = ? AND bucket = ?),
  (SELECT count(*) FROM coupons WHERE customer_id = ? AND campaign = ?),
  (SELECT count(*) FROM coupon_eligibility WHERE segment = ? AND customer_id = ?),
  (SELECT coalesce(max(CASE WHEN campaign <> ?
       AND ((status = 'occupied' AND (lease_until > ? OR valid_until > ?))
            OR (status = 'unused' AND valid_until > ?))
       AND (exclusive = 1 OR ? = 1) THEN 1 ELSE 0 END), 0)
   FROM coupons WHERE customer_id = ?)""" + REPLAY_FROM

_INSERT_COUPON = """
INSERT INTO coupons (coupon_id, campaign, customer_id, status, template_kind, template_value,
  exclusive, on_failed_drawdown, channels, lease_seconds, issued_at, issue_day, valid_from,
  valid_until, loan_id, lease_until, version, updated_at)
VALUES (?, ?, ?, 'unused', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, 1, ?)
"""

_COUNT_UP = (
    "INSERT INTO issuance_counters (campaign, bucket, issued) VALUES (?, 'total', 1), "
    "(?, ?, 1) ON CONFLICT (campaign, bucket) DO UPDATE SET issued = issuance_counters.issued + 1"
)


_PG_ISSUE = (
    "SELECT * FROM kequn_issue(?::int4, ?::int4, ?, ?, ?, ?, ?::int8, ?::int4, ?::int4, ?, ?, "
    "?::timestamp, ?::boolean, ?::int8, ?::int8, ?::int8, ?::int2, ?, ?, ?, ?, ?::int4, "
    "?::date, ?::timestamp, ?::timestamp, ?, ?::int4, ?::int4)"
)


@dataclass(frozen=True, slots=True)
class _PgCampaign:
    """The parameters of ``kequn_issue`` that depend on the campaign only, in the text
    form the statement receives (:func:`serving.db.pg_text`), encoded once per campaign
    definition: they are half of an issue's 28 parameters."""

    campaign: Campaign
    name: bytes
    segment: bytes
    total_stock: bytes
    daily_limit: bytes
    per_customer: bytes
    exclusive: bytes
    kind: bytes
    value: bytes
    on_failed: bytes
    channels: bytes
    lease: bytes
    definition_hash: bytes
    campaign_lock: bytes

    @classmethod
    def of(cls, campaign: Campaign) -> _PgCampaign:
        """``campaign``'s constant parameters, encoded."""
        def text(value: object) -> bytes:
            encoded = pg_text(value)
            assert encoded is not None  # a campaign's fields here are never NULL
            return encoded

        return cls(
            campaign, text(campaign.name), text(campaign.target_segment),
            text(campaign.total_stock), text(campaign.effective_daily_limit),
            text(campaign.per_customer_limit), text(int(campaign.exclusive)),
            text(campaign.template.kind), text(str(campaign.template.value)),
            text(campaign.on_failed_drawdown), text(",".join(sorted(campaign.channels))),
            text(campaign.lease_seconds), text(campaign.definition_hash),
            text(locks.lock_key(campaign.name)))


_KEY_NS, _CUSTOMER_NS, _CAMPAIGN_NS = (pg_text(locks.KEY), pg_text(locks.CUSTOMER),
                                       pg_text(locks.CAMPAIGN))


@dataclass(frozen=True)
class ExpiryReport:
    """What one expiry run changed."""

    released: int
    expired: int


@dataclass(frozen=True)
class Counters:
    """A campaign's counters as of a moment."""

    campaign: str
    total_stock: int
    issued: int
    day: str
    day_issued: int
    daily_limit: int | None
    per_customer_limit: int
    by_status: dict[str, int]
    budget: Decimal | None = None
    ledger: dict[str, int] = field(default_factory=dict)
    """The ledger's sums per kind (cents): reserve, book, release, reversal."""

    @property
    def remaining(self) -> int:
        return max(self.total_stock - self.issued, 0)

    @property
    def reserved_cents(self) -> int:
        """Reservations still held: reserve − release."""
        return self.ledger.get("reserve", 0) - self.ledger.get("release", 0)

    @property
    def booked_cents(self) -> int:
        """Reductions booked at confirm, less those reversed after confirm."""
        return self.ledger.get("book", 0) - self.ledger.get("reversal", 0)


class Issuer:
    """Coupon operations on one serving database, for a set of campaigns."""

    def __init__(self, db: ServingDB, campaigns: Mapping[str, Campaign],
                 clock: Clock | None = None):
        self.db = db
        self.campaigns = dict(campaigns)
        self.clock: Clock = clock or SystemClock()
        self._pg_campaigns: dict[str, _PgCampaign] = {}
        if db.dialect == "sqlite":
            # An issue dirties ~4 pages; the default checkpoint every 1,000 WAL pages then
            # fsyncs every ~250 requests, which measured as a third of the wall time here.
            # Checkpointing every 10,000 pages (a WAL of up to ~40 MB) keeps durability
            # unchanged and issues ~1.5x faster. (A per-connection setting.)
            db.execute(f"PRAGMA wal_autocheckpoint = {SQLITE_WAL_AUTOCHECKPOINT}")

    # -- plumbing --------------------------------------------------------------------
    def _run(self, body: Callable[[datetime], T], *, transaction: bool = True) -> T:
        """Run ``body(now)`` in one transaction; retry once on a unique-key race.

        Without ``transaction`` the body is a single statement, its own transaction.
        """
        for attempt in (1, 2):
            now = self.clock.now()
            try:
                if not transaction:
                    return body(now)
                with self.db.transaction():
                    return body(now)
            except integrity_errors() as exc:
                if attempt == 2:
                    raise ExecutionError(f"request failed twice on a unique key: {exc}",
                                         Location()) from exc
        raise AssertionError("unreachable")

    def _advisory(self, namespace: int, value: str | int) -> None:
        if self.db.dialect == "postgresql":
            self.db.execute("SELECT pg_advisory_xact_lock(?, ?)",
                            (namespace, locks.lock_key(value)))

    def _advisory_many(self, namespace: int, values: Iterable[str | int]) -> None:
        """PostgreSQL: advisory-lock every value in ascending lock-key order, in one
        statement (``unnest`` keeps the array's order)."""
        keys = sorted({locks.lock_key(v) for v in values})
        if self.db.dialect == "postgresql" and keys:
            self.db.execute("SELECT count(pg_advisory_xact_lock(?, k)) "
                            "FROM unnest(?::int4[]) AS k", (namespace, keys))

    def lock_keys(self, keys: Iterable[str]) -> None:
        """PostgreSQL: lock idempotency keys (the first locks any request takes)."""
        self._advisory_many(locks.KEY, keys)

    def lock_customers(self, customers: Iterable[int]) -> None:
        """PostgreSQL: lock customers, after the campaign row (no-op on SQLite)."""
        self._advisory_many(locks.CUSTOMER, customers)

    def lock_campaign(self, name: str) -> None:
        """PostgreSQL: lock the campaign's stock row (creating it at 0 if needed)."""
        if self.db.dialect != "postgresql":
            return
        sql = ("SELECT issued FROM issuance_counters WHERE campaign = ? AND bucket = 'total' "
               "FOR UPDATE")
        if self.db.fetchone(sql, (name,)) is None:
            self.db.execute("INSERT INTO issuance_counters (campaign, bucket, issued) "
                            "VALUES (?, 'total', 0) ON CONFLICT (campaign, bucket) DO NOTHING",
                            (name,))
            self.db.fetchone(sql, (name,))

    def _settle(self, coupon: Coupon, now: datetime, key: str | None) -> Coupon:
        """Apply what time has already decided: an ended lease, a validity past."""
        if coupon.lease_over(now):
            assert coupon.loan_id is not None
            close_try(self.db, coupon.coupon_id, coupon.loan_id, why.LEASE_EXPIRED, now)
            coupon = move(self.db, coupon, UNUSED, now=now, reason=why.LEASE_EXPIRED, key=key,
                          loan_id=None)
        if coupon.status == UNUSED and coupon.valid_until <= now:
            coupon = move(self.db, coupon, EXPIRED, now=now, reason="validity_ended", key=key,
                          loan_id=None)
        return coupon

    def _done(self, request: Request, now: datetime, ok: bool, reason: str | None,
              coupon: Coupon | None) -> Outcome:
        result = Outcome(request.operation, ok, reason,
                         coupon.coupon_id if coupon else None,
                         coupon.status if coupon else None)
        return record(self.db, request, result, now)

    # -- issue -----------------------------------------------------------------------
    def issue(self, campaign: str, customer_id: int, key: str) -> Outcome:
        """Issue one coupon of ``campaign`` to ``customer_id``, or refuse with a reason.

        Refusals: not_live (the campaign is not live, or its file changed since approval),
        outside_window, not_eligible, stock_exhausted, daily_limit, per_customer_limit,
        exclusive_conflict, budget_exhausted. not_live, stock_exhausted, daily_limit and
        budget_exhausted are not recorded under the key (:data:`NOT_RECORDED`): the same
        request issues once the campaign is live or has room again.
        """
        chosen = get_campaign(self.campaigns, campaign)
        if (self.db.dialect == "postgresql" and not self.db.in_transaction
                and chosen.budget is None):
            return self._run(lambda now: self._issue_pg(chosen, customer_id, key, now),
                             transaction=False)
        return self._run(lambda now: self.issue_in_transaction(chosen, customer_id, key, now))

    def issue_many(self, requests: Sequence[tuple[str, int, str]]) -> list[Outcome]:
        """Issue each ``(campaign, customer_id, key)`` as :meth:`issue` would, in order;
        the outcomes in the same order.

        On SQLite they share one transaction and one moment (one commit for the lot; single
        issues of other processes wait for it), so a crash keeps all or none of them;
        re-sending them replays what was kept. There, the requests that cannot meet are
        decided together, set-based (:func:`issuance.batch.issue_each`: a rule's 8,481
        coupons of the 10M day in 0.2 s instead of 0.9 s). On PostgreSQL each is its own
        :meth:`issue`, so no campaign's counters stay locked across requests."""
        if self.db.dialect != "sqlite" or self.db.in_transaction:
            return [self.issue(c, customer, key) for c, customer, key in requests]
        chosen = [(get_campaign(self.campaigns, c), int(customer), key)
                  for c, customer, key in requests]
        with self.db.transaction():
            return issue_each(self, chosen, self.clock.now())

    def _issue_pg(self, campaign: Campaign, customer_id: int, key: str,
                  now: datetime) -> Outcome:
        """PostgreSQL: the whole issue in one statement (``kequn_issue``, see
        :mod:`issuance.schema`): one round trip, locks held for the server's work only,
        sent as a prepared statement through libpq (:meth:`ServingDB.fetchone_prepared`:
        with 8 processes on 2 cores the client's CPU is taken from the server's).
        (A budgeted campaign goes through :meth:`issue_in_transaction`, which reserves
        the budget in the ledger.)"""
        request = Request("issue", key, (campaign.name, str(int(customer_id))))
        day = business_day(now)
        valid_from, valid_until = campaign.validity.period(now)
        coupon_id = coupon_id_for(key)
        c = self._pg_campaigns.get(campaign.name)
        if c is None or c.campaign is not campaign:
            c = self._pg_campaigns[campaign.name] = _PgCampaign.of(campaign)
        row = self.db.fetchone_prepared("kequn_issue", _PG_ISSUE, (
            _KEY_NS, locks.lock_key(key), key, coupon_id, request.fingerprint, c.name,
            int(customer_id), _CUSTOMER_NS, locks.lock_key(customer_id), c.segment,
            day.isoformat(), to_db(now), campaign.in_window(now), c.total_stock,
            c.daily_limit, c.per_customer, c.exclusive, c.kind, c.value, c.on_failed,
            c.channels, c.lease, day, to_db(valid_from), to_db(valid_until),
            c.definition_hash, _CAMPAIGN_NS, c.campaign_lock,
        ))
        assert row is not None  # text values: o_ok is '0' or '1'
        ok = None if row[2] is None else int(row[2])
        prior = interpret_replay(request, (*row[:2], ok, *row[3:]))
        if prior is not None:
            return prior
        if row[8] is not None:
            return Outcome("issue", False, str(row[8]))
        return Outcome("issue", True, None, coupon_id, UNUSED)

    def issue_in_transaction(self, campaign: Campaign, customer_id: int, key: str,
                             now: datetime) -> Outcome:
        """The body of :meth:`issue`, for callers that already opened the transaction."""
        request = Request("issue", key, (campaign.name, str(int(customer_id))))
        self._advisory(locks.KEY, key)
        not_live = live_refusal(self.db, campaign, lock=True)
        self._advisory(locks.CUSTOMER, customer_id)
        self.lock_campaign(campaign.name)
        day = business_day(now)
        stored_now = to_db(now)
        row = self.db.fetchone(_SNAPSHOT, (
            campaign.name, campaign.name, day.isoformat(), customer_id, campaign.name,
            campaign.target_segment, customer_id, campaign.name, stored_now, stored_now,
            stored_now, int(campaign.exclusive), customer_id, *replay_params(request),
        ))
        assert row is not None
        prior = interpret_replay(request, row)
        if prior is not None:
            return prior
        if not_live is not None:
            return Outcome("issue", False, not_live)  # not recorded: see issue()
        stock, today, mine, eligible, conflict = row[8:]
        snapshot = Snapshot(
            eligible=bool(eligible), stock_issued=int(stock or 0), day_issued=int(today or 0),
            customer_issued=int(mine or 0), conflicting_coupon=bool(conflict),
        )
        reason = refusal(campaign, now, snapshot)
        coupon_id = coupon_id_for(key)
        if reason is None and campaign.budget is not None:
            reason = self._reserve(campaign, coupon_id, now, key)
        if reason in NOT_RECORDED:
            return Outcome("issue", False, reason)  # not recorded: see issue()
        if reason is not None:
            return record(self.db, request, Outcome("issue", False, reason), now)
        valid_from, valid_until = campaign.validity.period(now)
        self.db.execute(_INSERT_COUPON, (
            coupon_id, campaign.name, customer_id, campaign.template.kind,
            str(campaign.template.value), int(campaign.exclusive), campaign.on_failed_drawdown,
            ",".join(sorted(campaign.channels)), campaign.lease_seconds, stored_now, day,
            to_db(valid_from), to_db(valid_until), stored_now,
        ))
        self.db.execute(_COUNT_UP, (campaign.name, campaign.name, day.isoformat()))
        # The coupon row (its id derived from the key) records this result; see replay().
        return Outcome("issue", True, None, coupon_id, UNUSED)

    def _reserve(self, campaign: Campaign, coupon_id: str, now: datetime,
                 key: str) -> str | None:
        """A budgeted campaign: refuse unless its budget covers the coupon's worst-case
        reduction, which is then reserved (under the campaign's lock)."""
        assert campaign.budget is not None
        if not ledger.reserve(self.db, campaign.name, ledger.to_cents(campaign.budget),
                              coupon_id, ledger.to_cents(campaign.max_reduction), now, key):
            return BUDGET_EXHAUSTED
        return None

    # -- occupy / confirm / reverse ----------------------------------------------------
    def _on_coupon(self, request: Request, coupon_id: str,
                   step: Callable[[datetime, Coupon], Outcome]) -> Outcome:
        """Run ``step`` on the locked coupon in one transaction.

        A replayed key returns its first result and an unknown coupon is refused
        (not_found) before ``step`` sees anything.
        """

        def body(now: datetime) -> Outcome:
            self._advisory(locks.KEY, request.key)
            coupon = read_coupon(self.db, coupon_id, lock=True)
            prior = replay(self.db, request)
            if prior is not None:
                return prior
            if coupon is None:
                return self._done(request, now, False, why.NOT_FOUND, None)
            return step(now, coupon)

        return self._run(body)

    def occupy(self, coupon_id: str, loan_id: str, key: str, *,
               lease_seconds: int | None = None, channel: str | None = None,
               context: LoanContext | None = None) -> Outcome:
        """Hold an unused coupon for ``loan_id`` under a lease (default: the campaign's).

        With a loan ``context`` (:class:`project.scope.LoanContext`) the campaign's loan-time
        scope is checked field by field, and the loan's terms against the campaign's bounds;
        the coupon's trial reduction on the loan is kept for confirm to book.

        Refusals: not_found, dangling_try (the loan's reverse came first), loan_reversed,
        lease_expired (this loan's earlier lease ended), expired, not_yet_valid,
        channel_out_of_scope, unknown_campaign, activity_out_of_scope,
        asset_party_out_of_scope, funding_party_out_of_scope, customer_type_out_of_scope,
        credit_method_out_of_scope, loan_out_of_bounds, exclusive_conflict (stacking on the
        loan), illegal_transition.
        """
        if lease_seconds is not None and lease_seconds < 1:
            raise ExecutionError(f"lease must be at least 1 second, not {lease_seconds}",
                                 Location())
        if context is not None and context.channel is not None:
            channel = channel or context.channel
        arguments = (coupon_id, loan_id, str(lease_seconds or ""), channel or "")
        if context is not None:
            arguments += (context.fingerprint(),)
        request = Request("occupy", key, arguments)

        def step(now: datetime, coupon: Coupon) -> Outcome:
            coupon = self._settle(coupon, now, key)
            closed = closed_try(self.db, coupon_id, loan_id)
            if closed is not None:
                reason = {why.EMPTY_ROLLBACK: why.DANGLING_TRY,
                          why.LEASE_EXPIRED: why.LEASE_EXPIRED}.get(closed, why.LOAN_REVERSED)
                return self._done(request, now, False, reason, coupon)
            if coupon.status == EXPIRED:
                return self._done(request, now, False, why.EXPIRED, coupon)
            if coupon.status == OCCUPIED and coupon.loan_id != loan_id:
                return self._done(request, now, False, why.WRONG_LOAN, coupon)
            if coupon.status != UNUSED:
                return self._done(request, now, False, why.ILLEGAL_TRANSITION, coupon)
            if coupon.valid_from > now:
                return self._done(request, now, False, why.NOT_YET_VALID, coupon)
            if channel is not None and channel not in coupon.channels:
                return self._done(request, now, False, why.CHANNEL_OUT_OF_SCOPE, coupon)
            reduction: int | None = None
            if context is not None:
                scoped = self._scope(coupon, context)
                if isinstance(scoped, str):
                    return self._done(request, now, False, scoped, coupon)
                reduction = scoped
            self._advisory(locks.LOAN, loan_id)
            others = self.db.fetchall(
                "SELECT exclusive FROM coupons WHERE loan_id = ? AND coupon_id <> ? "
                "AND (status = 'used' OR (status = 'occupied' AND lease_until > ?))",
                (loan_id, coupon_id, to_db(now)),
            )
            if others and (coupon.exclusive or any(bool(e) for (e,) in others)):
                return self._done(request, now, False, why.EXCLUSIVE_CONFLICT, coupon)
            lease = timedelta(seconds=lease_seconds or coupon.lease_seconds)
            coupon = move(self.db, coupon, OCCUPIED, now=now, reason="occupied", key=key,
                          loan_id=loan_id, lease_until=now + lease)
            if context is not None:
                ledger.remember_loan(self.db, coupon_id, loan_id, context.fingerprint(),
                                     reduction, now)
            return self._done(request, now, True, None, coupon)

        return self._on_coupon(request, coupon_id, step)

    def confirm(self, coupon_id: str, loan_id: str, key: str) -> Outcome:
        """Mark the coupon ``used`` by ``loan_id`` (disbursed), within its lease.

        Refusals: not_found, lease_expired (the lease ended; the coupon is released),
        loan_reversed, wrong_loan, illegal_transition.
        """
        request = Request("confirm", key, (coupon_id, loan_id))

        def step(now: datetime, coupon: Coupon) -> Outcome:
            if coupon.status == OCCUPIED and coupon.loan_id == loan_id:
                if coupon.lease_over(now):
                    coupon = self._settle(coupon, now, key)
                    return self._done(request, now, False, why.LEASE_EXPIRED, coupon)
                coupon = move(self.db, coupon, USED, now=now, reason="confirmed", key=key,
                              loan_id=loan_id, lease_until=coupon.lease_until)
                ledger.book(self.db, coupon_id, coupon.campaign, loan_id, now, key)
                return self._done(request, now, True, None, coupon)
            coupon = self._settle(coupon, now, key)
            closed = closed_try(self.db, coupon_id, loan_id)
            if closed == why.LEASE_EXPIRED:
                return self._done(request, now, False, why.LEASE_EXPIRED, coupon)
            if closed is not None:
                return self._done(request, now, False, why.LOAN_REVERSED, coupon)
            if coupon.status == OCCUPIED:
                return self._done(request, now, False, why.WRONG_LOAN, coupon)
            return self._done(request, now, False, why.ILLEGAL_TRANSITION, coupon)

        return self._on_coupon(request, coupon_id, step)

    def reverse(self, coupon_id: str, loan_id: str, key: str) -> Outcome:
        """Undo ``loan_id``'s use of the coupon after a failed (or reversed) drawdown.

        The coupon becomes ``voided`` (policy ``void``, the default) or ``unused``
        (``restore``). Before confirm the coupon's budget reservation is released (void);
        after confirm the booked reduction is reversed in the ledger (a ``reversal``
        entry, the campaign's booked sum goes down), and a restored coupon of a budgeted
        campaign reserves its worst case again, under the campaign's lock (when the budget
        cannot cover it any more the coupon is voided instead, history reason
        ``budget_exhausted``). A reverse with no recorded occupy is an empty rollback: it
        succeeds and closes the loan's try, so a late occupy is refused. Refusals:
        not_found, wrong_loan.
        """
        request = Request("reverse", key, (coupon_id, loan_id))

        def step(now: datetime, coupon: Coupon) -> Outcome:
            if coupon.status == OCCUPIED and coupon.loan_id == loan_id:
                if coupon.lease_over(now):
                    coupon = self._settle(coupon, now, key)
                    return self._done(request, now, True, why.LEASE_EXPIRED, coupon)
                target = VOIDED if coupon.on_failed_drawdown == "void" else UNUSED
                close_try(self.db, coupon_id, loan_id, "reversed", now)
                coupon = move(self.db, coupon, target, now=now, reason="drawdown_failed",
                              key=key, loan_id=loan_id if target == VOIDED else None)
                coupon = self._settle(coupon, now, key)
                return self._done(request, now, True, None, coupon)
            coupon = self._settle(coupon, now, key)
            if closed_try(self.db, coupon_id, loan_id) is not None:
                return self._done(request, now, True, why.ALREADY_CLOSED, coupon)
            if coupon.status == OCCUPIED:
                return self._done(request, now, False, why.WRONG_LOAN, coupon)
            if coupon.status == USED and coupon.loan_id == loan_id:
                coupon = self._reverse_booking(coupon, loan_id, now, key)
                return self._done(request, now, True, None, coupon)
            close_try(self.db, coupon_id, loan_id, why.EMPTY_ROLLBACK, now)
            return self._done(request, now, True, why.EMPTY_ROLLBACK, coupon)

        return self._on_coupon(request, coupon_id, step)

    def _reverse_booking(self, coupon: Coupon, loan_id: str, now: datetime,
                         key: str) -> Coupon:
        """A used coupon's drawdown was reversed: reverse its booking, then void or restore
        it (see :meth:`reverse`)."""
        target, reason = (VOIDED if coupon.on_failed_drawdown == "void" else UNUSED,
                          "drawdown_reversed")
        reserve_again = target == UNUSED and ledger.reserved_before(self.db, coupon.coupon_id)
        if reserve_again:
            # Lock order: key, coupon, the campaign's counters row, then (written below)
            # its budget row, as an issue takes them; no path holds the counters row
            # while waiting for a coupon row or a key.
            self.lock_campaign(coupon.campaign)
        close_try(self.db, coupon.coupon_id, loan_id, "reversed", now)
        ledger.reverse_booking(self.db, coupon.coupon_id, coupon.campaign, loan_id, now, key)
        if reserve_again:
            campaign = self.campaigns.get(coupon.campaign)
            if campaign is None or campaign.budget is None or not ledger.reserve(
                    self.db, campaign.name, ledger.to_cents(campaign.budget),
                    coupon.coupon_id, ledger.to_cents(campaign.max_reduction), now, key):
                target, reason = VOIDED, BUDGET_EXHAUSTED
        coupon = move(self.db, coupon, target, now=now, reason=reason, key=key,
                      loan_id=loan_id if target == VOIDED else None)
        return self._settle(coupon, now, key)

    def _scope(self, coupon: Coupon, context: LoanContext) -> str | int | None:
        """A scope refusal reason, or the coupon's trial reduction on the loan in cents
        (None when the context gives no loan terms)."""
        campaign = self.campaigns.get(coupon.campaign)
        if campaign is None:
            return why.UNKNOWN_CAMPAIGN
        reason = scope_refusal(campaign.scope, context)
        if reason is not None:
            return reason
        loan = context.loan
        if loan is None:
            return None
        if campaign.bounds.problem(loan):
            return LOAN_OUT_OF_BOUNDS
        try:
            plan = repayment_plan(loan, [campaign.template.coupon])
        except TrialError as exc:
            raise ExecutionError(f"loan context: {exc}", Location()) from None
        return ledger.to_cents(plan.total_reduction)

    def void(self, coupon_id: str, key: str, *, user: str, reason: str) -> Outcome:
        """An operator voids an unused coupon (with a reason); one audit log entry.

        Refusals: not_found, illegal_transition (not unused: occupied, used, expired...).
        """
        user = audit.require_user(user)
        if not reason.strip():
            raise ExecutionError("a void needs a reason", Location())
        request = Request("void", key, (coupon_id, user, reason))

        def step(now: datetime, coupon: Coupon) -> Outcome:
            coupon = self._settle(coupon, now, key)
            if coupon.status != UNUSED:
                return self._done(request, now, False, why.ILLEGAL_TRANSITION, coupon)
            before = coupon.to_dict()
            coupon = move(self.db, coupon, VOIDED, now=now, reason="operator_void", key=key,
                          loan_id=None)
            audit.record(self.db, user, "coupon_void", f"coupon:{coupon_id}", before=before,
                         after=coupon.to_dict(), detail=reason)
            return self._done(request, now, True, None, coupon)

        return self._on_coupon(request, coupon_id, step)

    # -- expiry and reads ----------------------------------------------------------------
    def expire(self, *, chunk_size: int = 1000) -> ExpiryReport:
        """Release ended leases and expire unused coupons past validity (one transaction).

        The candidates are found first without the write lock (a read that does not
        block issuers on SQLite); the transaction then re-reads each one by id, locked,
        and applies only what is still due, so a coupon confirmed meanwhile is left alone.
        """
        first = self.clock.now()
        candidates = [str(cid) for (cid,) in self.db.fetchall(
            "SELECT coupon_id FROM coupons WHERE (status = 'occupied' AND lease_until <= ?) "
            "OR (status = 'unused' AND valid_until <= ?)", (to_db(first), to_db(first)))]

        def body(now: datetime) -> ExpiryReport:
            released = expired = 0
            for start in range(0, len(candidates), chunk_size):
                ids = candidates[start:start + chunk_size]
                marks = ", ".join("?" for _ in ids)
                rows = coupons_where(self.db, f"coupon_id IN ({marks})", ids, lock=True)
                leased = [c for c in rows if c.lease_over(now)]
                for coupon in leased:
                    assert coupon.loan_id is not None
                    close_try(self.db, coupon.coupon_id, coupon.loan_id, why.LEASE_EXPIRED,
                              now)
                freed = move_many(self.db, [(c, UNUSED, None, None) for c in leased], now=now,
                                  reason=why.LEASE_EXPIRED, key=None)
                by_id = {c.coupon_id: c for c in rows} | {c.coupon_id: c for c in freed}
                stale = [c for c in by_id.values()
                         if c.status == UNUSED and c.valid_until <= now]
                move_many(self.db, [(c, EXPIRED, None, None) for c in stale], now=now,
                          reason="validity_ended", key=None)
                released += len(leased)
                expired += len(stale)
            return ExpiryReport(released=released, expired=expired)

        return self._run(body)

    def coupon(self, coupon_id: str) -> Coupon | None:
        """The coupon as stored (use ``effective_status(now)`` for its state now)."""
        return read_coupon(self.db, coupon_id)

    def coupons_of(self, customer_id: int) -> list[Coupon]:
        """A customer's coupons, oldest first."""
        return coupons_where(self.db, "customer_id = ? ORDER BY issued_at, coupon_id",
                             (customer_id,))

    def history(self, coupon_id: str) -> list[tuple[int, str | None, str, datetime, str | None,
                                                   str]]:
        """Every state of a coupon: (seq, from, to, at, loan_id, reason), oldest first.

        Entry 1 is the issue (the coupon row's creation: ``None → unused``); the rest are
        the transitions recorded in ``coupon_history`` (``seq`` = the row's version).
        Empty for an unknown coupon.
        """
        coupon = read_coupon(self.db, coupon_id)
        if coupon is None:
            return []
        rows = self.db.fetchall(
            "SELECT seq, from_status, to_status, at, loan_id, reason FROM coupon_history "
            "WHERE coupon_id = ? ORDER BY seq", (coupon_id,))
        issued = (1, None, UNUSED, coupon.issued_at, None, "issued")
        return [issued, *((int(s), f, t, from_db(a), loan, r) for s, f, t, a, loan, r in rows)]

    def counters(self, campaign: str) -> Counters:
        """The campaign's issued count, today's count and coupons by effective state."""
        chosen = get_campaign(self.campaigns, campaign)
        now = self.clock.now()
        stored, day = to_db(now), business_day(now)
        sql = "SELECT issued FROM issuance_counters WHERE campaign = ? AND bucket = ?"
        issued = self.db.scalar(sql, (chosen.name, "total"))
        day_issued = self.db.scalar(sql, (chosen.name, day.isoformat()))
        rows = self.db.fetchall(
            "SELECT CASE"
            " WHEN status = 'occupied' AND lease_until <= ? AND valid_until <= ? THEN 'expired'"
            " WHEN status = 'occupied' AND lease_until <= ? THEN 'unused'"
            " WHEN status = 'unused' AND valid_until <= ? THEN 'expired'"
            " ELSE status END AS effective, count(*) FROM coupons WHERE campaign = ?"
            " GROUP BY 1 ORDER BY 1",
            (stored, stored, stored, stored, chosen.name))
        return Counters(
            campaign=chosen.name, total_stock=chosen.total_stock, issued=int(issued or 0),
            day=day.isoformat(), day_issued=int(day_issued or 0),
            daily_limit=chosen.daily_limit, per_customer_limit=chosen.per_customer_limit,
            by_status={str(s): int(n) for s, n in rows}, budget=chosen.budget,
            ledger=ledger.sums(self.db, chosen.name),
        )
