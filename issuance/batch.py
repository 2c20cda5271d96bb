"""Batch issuance: one coupon offer to every eligible customer of a campaign for a day.

The batch is set-based: a few statements decide and write the whole offer, with the same
result as sending each customer's request through :meth:`Issuer.issue` one after the
other (the property tests compare the two). Each customer's request has the idempotency
key :func:`batch_key` ``(campaign, customer, day)``, so re-running a day replays its
coupons and its recorded refusals, and decides the others again (a refusal for the
campaign's room is not recorded, :data:`issuance.limits.NOT_RECORDED`): with no more
room than before, it reports the same counts; with a raised stock or limit, the next
customers in the day's order get their coupons.

How one chunk is decided (inside one transaction, holding the campaign's lock):

1. candidates: the segment's members with their keys and coupon ids. They are decided
   as if issued one by one in the order of the coupon ids (a deterministic, pseudo-random
   order: who receives a coupon when the stock or daily limit binds does not depend on
   how customer ids were assigned);
2. facts and a first fate per candidate, in one statement: the key's first result (a
   request row or the coupon its issue created), whether the customer is still
   eligible, their coupons of this campaign, whether they hold a conflicting live coupon
   of another campaign; the fate as if the stock, day and budget had room for all;
3. the cutoff: a candidate is *issuable* when it is new, eligible, under the
   per-customer limit and free of stacking conflicts; the issuable candidate at which
   the room left (stock, day, budget) runs out (:func:`_cutoff`) splits the candidates
   into those one-by-one issuing reaches with room left and those after it, whose fate
   is corrected: this decides the stock and daily limits and the budget exactly as
   one-by-one issuing would, reasons in the same order as
   :func:`issuance.limits.refusal_for_counts`, then ``budget_exhausted``. Every coupon of
   a campaign reserves the same worst case, so the budget's room in coupons is
   ``(budget − reserved − booked) // reservation``, read under the campaign's lock;
4. writes: the coupons (``INSERT ... SELECT``), the refusals that are recorded under
   their keys (the customer's own: window, eligibility, per-customer limit, stacking;
   on a day the daily limit turns 580k customers away, those are not written), the
   counters by the number issued, and for a campaign with a budget one ``reserve``
   ledger entry per coupon (:func:`issuance.ledger.reserve_planned`).

A campaign that is not live (:func:`issuance.approval.live_refusal`) issues nothing: every
new candidate is refused ``not_live`` and, as for single issues, that refusal is not
recorded under the key, so the day's batch issues once the campaign is live (replayed
keys still report their first result).

SQLite runs the whole batch as one ``BEGIN IMMEDIATE`` transaction by default (single
issues wait on the write lock for its duration, about a second per 200,000 customers), in
chunks of :data:`SQLITE_CHUNK` customers for a segment larger than :data:`SQLITE_WHOLE`,
so no single issue waits near the busy timeout.
PostgreSQL runs chunks of :data:`PG_CHUNK` customers, one transaction each, taking locks
in the global order of :mod:`issuance.locks` (the chunk's keys, the campaign shared, the
chunk's customers, the counters row), so batches and single issues never deadlock; a
crash loses at most the chunk in flight and the re-run completes it.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Protocol

from issuance.approval import live_refusal
from issuance.clock import Clock, business_day, to_db
from issuance.ledger import budget_use, reserve_planned, to_cents
from issuance.limits import (
    BUDGET_EXHAUSTED,
    DAILY_LIMIT,
    EXCLUSIVE_CONFLICT,
    ISSUE_REFUSALS,
    NOT_ELIGIBLE,
    NOT_LIVE,
    NOT_RECORDED,
    OUTSIDE_WINDOW,
    PER_CUSTOMER_LIMIT,
    STOCK_EXHAUSTED,
)
from issuance.outcome import IdempotencyConflict, Outcome
from issuance.states import UNUSED
from issuance.store import coupon_id_for
from project.campaign import Campaign
from serving.db import ServingDB

PG_CHUNK = 500
"""Customers per transaction on PostgreSQL (each takes two advisory locks)."""
SQLITE_WHOLE = 1_000_000
"""On SQLite a segment of up to this many customers is decided in one transaction (about
5 s at 1M on this machine, while single issues wait for the write lock); a larger one in
chunks of :data:`SQLITE_CHUNK`, so no single issue waits near the busy timeout (30 s).
(A chunk re-checks each candidate's eligibility: about twice the cost per customer.)"""
SQLITE_CHUNK = 500_000
"""Customers per transaction of a SQLite batch over more than :data:`SQLITE_WHOLE`."""

ISSUED = "issued"
REPLAYED = "replayed"
RECORDED = tuple(r for r in ISSUE_REFUSALS if r not in NOT_RECORDED)
"""The fates written to ``issuance_requests`` under their keys: a refusal of the customer's
own (window, eligibility, per-customer limit, stacking; those of
:data:`~issuance.limits.NOT_RECORDED`, the room's and ``not_live``, are not)."""
_SEP = "\x1f"  # issuance.store.Request.fingerprint's separator


class Issuer(Protocol):
    """What the batch uses of :class:`issuance.service.Issuer` (which builds on this module
    for :meth:`~issuance.service.Issuer.issue_many`, so it is not imported here)."""

    db: ServingDB
    clock: Clock

    def lock_keys(self, keys: Iterable[str]) -> None:
        """Lock idempotency keys for the transaction (PostgreSQL)."""

    def lock_customers(self, customers: Iterable[int]) -> None:
        """Lock customers for the transaction (PostgreSQL), in the global order."""

    def lock_campaign(self, name: str) -> None:
        """Lock the campaign's counters for the transaction."""

    def issue_in_transaction(self, campaign: Campaign, customer_id: int, key: str,
                             now: datetime) -> Outcome:
        """One issue request inside the caller's transaction."""


_CANDIDATES = "kequn_batch_candidates"
_PLAN = "kequn_batch_plan"
_REQUESTS = "kequn_issue_requests"
SET_BASED_FROM = 32
"""Requests of one campaign in a run of :func:`issue_each` decided set-based from this many
on (fewer are cheaper one by one)."""


def batch_key(campaign: str, customer_id: int, day: date) -> str:
    """The idempotency key of ``campaign``'s batch offer to ``customer_id`` on ``day``.

    >>> batch_key("wake_up_30d", 42, date(2026, 3, 10))
    'batch:wake_up_30d:42:2026-03-10'
    """
    return f"batch:{campaign}:{int(customer_id)}:{day.isoformat()}"


@dataclass
class BatchReport:
    """What a batch run did: coupons issued now, results replayed, refusals by reason."""

    campaign: str
    day: date
    eligible: int = 0
    issued: int = 0
    replayed_issued: int = 0
    refused: Counter[str] = field(default_factory=Counter)

    @property
    def total_issued(self) -> int:
        """Coupons this day's batch has issued, in this run or an earlier one."""
        return self.issued + self.replayed_issued


def _sqlite_coupon_id(key: str) -> str:
    # issuance.store.coupon_id_for, as a SQLite function
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def _dialect_sql(db: ServingDB) -> dict[str, str]:
    """The few expressions that differ between SQLite and PostgreSQL."""
    if db.dialect == "sqlite":
        db.raw.create_function("kequn_coupon_id", 1, _sqlite_coupon_id, deterministic=True)
        return {"coupon_id": "kequn_coupon_id({})", "text": "{}", "int": "INTEGER"}
    return {"coupon_id": "substr(encode(sha256(convert_to({}, 'UTF8')), 'hex'), 1, 20)",
            "text": "{}::text", "int": "BIGINT"}


def _key_sql(sql: dict[str, str]) -> str:
    """:func:`batch_key` in SQL over ``customer_id`` (parameters: campaign, day)."""
    return "'batch:' || ? || ':' || " + sql["text"].format("customer_id") + " || ':' || ?"


def _create_tables(db: ServingDB, sql: dict[str, str], *, candidates: bool) -> None:
    for table in (_CANDIDATES, _PLAN):
        db.execute(f"DROP TABLE IF EXISTS {table}")
    if candidates:
        db.execute(f"CREATE TEMP TABLE {_CANDIDATES} (seq {sql['int']} PRIMARY KEY, "
                   "customer_id BIGINT NOT NULL, coupon_id VARCHAR(40) NOT NULL)")
    db.execute(f"CREATE TEMP TABLE {_PLAN} (coupon_id VARCHAR(40) NOT NULL, "
               "customer_id BIGINT NOT NULL, idem_key VARCHAR(300) NOT NULL, "
               "fate VARCHAR(64) NOT NULL, prior_operation VARCHAR(16), "
               "prior_fingerprint VARCHAR(600), prior_ok SMALLINT, prior_reason VARCHAR(64), "
               "coupon_campaign VARCHAR(200), coupon_customer BIGINT)")


def _fill_candidates(db: ServingDB, sql: dict[str, str], campaign: Campaign,
                     day: date) -> int:
    """Number the segment's members in coupon-id order (for chunks); how many there are."""
    db.execute(
        f"INSERT INTO {_CANDIDATES} (seq, customer_id, coupon_id) "
        f"WITH keyed AS MATERIALIZED (SELECT customer_id, "
        f"  {sql['coupon_id'].format(_key_sql(sql))} AS coupon_id "
        "  FROM coupon_eligibility WHERE segment = ?) "
        "SELECT row_number() OVER (ORDER BY coupon_id, customer_id), customer_id, coupon_id "
        "FROM keyed",
        (campaign.name, day.isoformat(), campaign.target_segment))
    return int(db.scalar(f"SELECT count(*) FROM {_CANDIDATES}") or 0)


# Each candidate with its facts and fate, written to the plan in one statement. The
# candidates are MATERIALIZED first: SQLite would otherwise evaluate the key's hash (a
# Python function) once per use of ``coupon_id`` in the statement. ``{source}`` yields
# (customer_id, coupon_id, idem_key) of the candidates decided now; ``{eligible}``
# re-checks eligibility when the candidates were read in an earlier transaction. One
# probe of the customer's coupons gives the customer's own refusal, if any: their coupons
# of this campaign reach the per-customer limit, or one of their live coupons of another
# campaign conflicts (the live-coupon test of issuance.service._SNAPSHOT).
#
# The fate is written as if the stock, day and budget had room for every candidate, or
# for none when there is no room at all: then the limit that refuses every candidate
# before its own limits are read (stock or daily, :func:`_room_refusal`) is a parameter,
# and so is what a candidate with no refusal of its own gets ('issued', or
# 'budget_exhausted' when no room is left). The candidates after the cutoff get their
# corrected fate where the plan is read (:class:`_Decision`). The rows keep the segment's
# order (by customer), and the coupons are appended in that order (on SQLite the coupons
# table has a rowid since issuance migration 7: only its coupon-id index is written in
# hash order); a second pass writing each row's fate (or a view computing it where it is
# read) cost more than writing it here.
_FACTS = f"""
INSERT INTO {_PLAN} (coupon_id, customer_id, idem_key, fate, prior_operation,
  prior_fingerprint, prior_ok, prior_reason, coupon_campaign, coupon_customer)
WITH candidate AS MATERIALIZED ({{source}})
SELECT c.coupon_id, c.customer_id, c.idem_key,
  CASE
    WHEN r.operation IS NOT NULL OR k.campaign IS NOT NULL THEN '{REPLAYED}'
    WHEN ? = 0 THEN '{NOT_LIVE}'
    WHEN ? = 0 THEN '{OUTSIDE_WINDOW}'
    WHEN {{eligible}} = 0 THEN '{NOT_ELIGIBLE}'
    WHEN CAST(? AS VARCHAR(64)) IS NOT NULL THEN CAST(? AS VARCHAR(64))
    ELSE coalesce((
      SELECT CASE
        WHEN sum(CASE WHEN m.campaign = ? THEN 1 ELSE 0 END) >= ? THEN '{PER_CUSTOMER_LIMIT}'
        WHEN max(CASE WHEN m.campaign <> ?
                       AND ((m.status = 'occupied'
                             AND (m.lease_until > ? OR m.valid_until > ?))
                            OR (m.status = 'unused' AND m.valid_until > ?))
                       AND (m.exclusive = 1 OR ? = 1) THEN 1 ELSE 0 END) = 1
        THEN '{EXCLUSIVE_CONFLICT}' END
      FROM coupons AS m WHERE m.customer_id = c.customer_id), CAST(? AS VARCHAR(64)))
  END,
  r.operation, r.fingerprint, r.ok, r.reason, k.campaign, k.customer_id
FROM candidate AS c
LEFT JOIN issuance_requests AS r ON r.idempotency_key = c.idem_key
LEFT JOIN coupons AS k ON k.coupon_id = c.coupon_id
"""

# One by one in coupon-id order, a candidate meets the stock, daily and budget limits
# with the number issued before it, m = min(issuable candidates before it, can_issue),
# where can_issue is the room left under all three. m < can_issue (no limit refuses)
# exactly for the candidates up to the can_issue-th issuable one (the cutoff: the
# can_issue-th of those planned 'issued', :func:`_cutoff`); every candidate
# after it has m = can_issue, so a limit refuses it unless it is refused before (replayed,
# window, eligibility): stock or daily first, its own refusal next, then the budget.
_CUTOFF = (f"SELECT coupon_id, customer_id FROM {_PLAN} WHERE fate = '{ISSUED}' {{within}} "
           "ORDER BY coupon_id, customer_id LIMIT 1 OFFSET ?")
_WINDOWED = 50_000
"""Planned-issued candidates from which the cutoff is first searched in a narrow window."""
_ID_SPACE = 16 ** 8
"""The values of a coupon id's first 8 hex digits: the space the window is cut from."""
_AFTER = "(coupon_id, customer_id) > (?, ?)"
"""A plan row after the cutoff (parameters: the cutoff's coupon id and customer)."""


@dataclass(frozen=True)
class _Decision:
    """A decided chunk: how many candidates have each fate other than ``issued``
    (:func:`_fates`, corrected for the cutoff), and the cutoff with the fate it gives.

    The plan's rows keep the fate written by :data:`_FACTS`; those after ``cut`` whose
    planned fate is one of ``moved`` have the fate ``past`` instead (a refusal for the
    room, never recorded), applied where the plan is read (:meth:`issued`,
    :meth:`recorded`): correcting the rows in place rewrote 580k rows of a
    780k-candidate day (0.28 s)."""

    fates: Counter[str]
    cut: tuple[str, int] | None = None
    past: str = ISSUED
    moved: tuple[str, ...] = ()

    def issued(self) -> tuple[str, tuple[object, ...]]:
        """The condition (and its parameters) of the plan's rows issued now."""
        if self.cut is None:
            return f"fate = '{ISSUED}'", ()
        return f"fate = '{ISSUED}' AND NOT {_AFTER}", self.cut

    def recorded(self) -> tuple[str, tuple[object, ...]]:
        """The condition (and its parameters) of the plan's rows whose refusal is recorded
        under their keys: a fate that is not :data:`~issuance.limits.NOT_RECORDED` (nor
        issued, nor replayed), unless the cutoff moves it to ``past``."""
        recorded = ", ".join(f"'{fate}'" for fate in RECORDED)
        if self.cut is None:
            return f"fate IN ({recorded})", ()
        moved = ", ".join(f"'{fate}'" for fate in self.moved)
        return f"fate IN ({recorded}) AND NOT (fate IN ({moved}) AND {_AFTER})", self.cut


_RECHECK = ("CASE WHEN EXISTS (SELECT 1 FROM coupon_eligibility AS e WHERE e.segment = ? "
            "AND e.customer_id = c.customer_id) THEN 1 ELSE 0 END")

_INSERT_COUPONS = f"""
INSERT INTO coupons (coupon_id, campaign, customer_id, status, template_kind, template_value,
  exclusive, on_failed_drawdown, channels, lease_seconds, issued_at, issue_day, valid_from,
  valid_until, loan_id, lease_until, version, updated_at)
SELECT coupon_id, ?, customer_id, 'unused', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, 1, ?
FROM {_PLAN} WHERE {{issued}}
"""

_COUNT_UP = (
    "INSERT INTO issuance_counters (campaign, bucket, issued) VALUES (?, 'total', ?), "
    "(?, ?, ?) ON CONFLICT (campaign, bucket) DO UPDATE "
    "SET issued = issuance_counters.issued + excluded.issued"
)


@dataclass(frozen=True)
class _Source:
    """The candidates one decision reads (a query yielding ``customer_id, coupon_id,
    idem_key``, with its parameters) and how it checks that each is still eligible (an
    expression over ``c.customer_id``: ``1`` when the query read the segment itself)."""

    query: str
    params: tuple[object, ...] = ()
    eligible: str = "1"
    eligible_params: tuple[object, ...] = ()


def _segment_source(sql: dict[str, str], campaign: Campaign, day: date,
                    chunk: tuple[int, int] | None) -> _Source:
    """The batch's candidates: the segment's members read now, or the ``chunk`` (first,
    last seq) of the candidates table, read in an earlier transaction."""
    key, key_params = _key_sql(sql), (campaign.name, day.isoformat())
    if chunk is None:
        return _Source(f"SELECT customer_id, {sql['coupon_id'].format(key)} AS coupon_id, "
                       f"{key} AS idem_key FROM coupon_eligibility WHERE segment = ?",
                       (*key_params, *key_params, campaign.target_segment))
    return _Source(f"SELECT customer_id, coupon_id, {key} AS idem_key FROM {_CANDIDATES} "
                   "WHERE seq BETWEEN ? AND ?", (*key_params, *chunk),
                   _RECHECK, (campaign.target_segment,))


def _decide(issuer: Issuer, sql: dict[str, str], campaign: Campaign, now: datetime,
            source: _Source, live: bool) -> _Decision:
    """Read the counters and fill the plan with the candidates of ``source``. ``live``:
    the campaign may issue (read under its state lock). Returns the counts of the fates
    and the cutoff (:class:`_Decision`)."""
    db = issuer.db
    bucket = business_day(now).isoformat()
    row = db.fetchone(
        "SELECT (SELECT issued FROM issuance_counters WHERE campaign = ? AND bucket = 'total'),"
        " (SELECT issued FROM issuance_counters WHERE campaign = ? AND bucket = ?)",
        (campaign.name, campaign.name, bucket))
    assert row is not None
    stock_left = campaign.total_stock - int(row[0] or 0)
    daily_left = campaign.effective_daily_limit - int(row[1] or 0)
    budget_left = _budget_left(db, campaign, stock_left)
    can_issue = max(min(stock_left, daily_left, budget_left), 0)
    stored = to_db(now)
    room = _room_refusal(can_issue, stock_left, daily_left)
    no_room = can_issue <= 0
    planned = db.execute(_FACTS.format(source=source.query, eligible=source.eligible), (
        *source.params,
        int(live), int(campaign.in_window(now)),
        *source.eligible_params,
        room if no_room else None, room,
        campaign.name, campaign.per_customer_limit,
        campaign.name, stored, stored, stored, int(campaign.exclusive),
        BUDGET_EXHAUSTED if no_room else ISSUED,
    )).rowcount
    fates = _fates(db)
    if not 0 < can_issue < planned:
        return _Decision(+fates)
    issuable = planned - sum(fates.values())
    cut = _cutoff(db, can_issue - 1, issuable)
    if cut is None:
        return _Decision(+fates)
    return _past_cutoff(db, fates, room, cut, issuable - can_issue)


def _past_cutoff(db: ServingDB, fates: Counter[str], room: str | None,
                 cut: tuple[str, int], after: int) -> _Decision:
    """The decision with the cutoff ``cut`` (``after``: the planned coupons after it):
    the candidates after it get the fate the room's end gives them, counted into
    ``fates``. A planned coupon is refused by the stock or the day (``room``), else by
    the budget; a candidate refused by its own limits is refused by the stock or the day
    first, when they are out."""
    past = room or BUDGET_EXHAUSTED
    fates[past] += after
    moved: tuple[str, ...] = (ISSUED,)
    if room is not None:
        own = tuple(f for f in (PER_CUSTOMER_LIMIT, EXCLUSIVE_CONFLICT) if fates[f])
        moved += own
        if own:
            for fate, n in db.fetchall(
                    f"SELECT fate, count(*) FROM {_PLAN} WHERE fate IN "
                    f"({', '.join('?' for _ in own)}) AND {_AFTER} GROUP BY fate",
                    (*own, *cut)):
                fates[str(fate)] -= int(n)
                fates[room] += int(n)
    return _Decision(+fates, cut, past, moved)


def _cutoff(db: ServingDB, rank: int, total: int | None = None) -> tuple[str, int] | None:
    """The (coupon_id, customer_id) of the planned-issued candidate at 0-based ``rank`` in
    coupon-id order, None when there are fewer (``total``: how many there are, when
    known).

    Over many candidates only a narrow window of coupon ids is sorted (sorting all of them
    took 0.8 s of a 780k-candidate day): the ids are hashes, spread evenly, so the one at
    ``rank`` lies near that rank's share of the id space (:func:`_window`). One scan counts
    the candidates below the window's two ends; when ``rank`` falls between the counts,
    the candidate is the window's (rank - count below)-th. The counts are exact whatever
    the ids are; when the window misses the rank, all candidates are sorted."""
    if total is None:
        total = int(db.scalar(f"SELECT count(*) FROM {_PLAN} WHERE fate = '{ISSUED}'") or 0)
    if rank >= total:
        return None
    row = None
    if total >= _WINDOWED:
        low, high = _window(rank, total)
        below = db.fetchone("SELECT count(CASE WHEN coupon_id < ? THEN 1 END), "
                            "count(CASE WHEN coupon_id < ? THEN 1 END) "
                            f"FROM {_PLAN} WHERE fate = '{ISSUED}'", (low, high))
        assert below is not None
        before, through = int(below[0] or 0), int(below[1] or 0)
        if before <= rank < through:
            row = db.fetchone(_CUTOFF.format(within="AND coupon_id >= ? AND coupon_id < ?"),
                              (low, high, rank - before))
    if row is None:
        row = db.fetchone(_CUTOFF.format(within=""), (rank,))
    return None if row is None else (str(row[0]), int(row[1]))


def _window(rank: int, total: int) -> tuple[str, str]:
    """Bounds ``[low, high)`` of the coupon ids (8 hex digits, compared as text) around
    ``rank``'s share of the id space: for ``total`` evenly spread ids, the count below a
    point strays from its expectation by a standard deviation of sqrt(n p (1 - p)); the
    window reaches 6 of them, and 64 ids, to each side."""
    share = (rank + 0.5) / total
    reach = 6 * math.sqrt(total * share * (1 - share)) + 64
    low = max(int((rank - reach) / total * _ID_SPACE), 0)
    high = int((rank + reach) / total * _ID_SPACE) + 1
    return f"{low:08x}", "g" if high >= _ID_SPACE else f"{high:08x}"


def _room_refusal(can_issue: int, stock_left: int, daily_left: int) -> str | None:
    """The refusal of a candidate that finds no room left (``can_issue`` coupons before
    it), if the stock or the day refuses it before its own limits are read; None when
    only the budget is out of room (read after them)."""
    if can_issue >= stock_left:
        return STOCK_EXHAUSTED
    if can_issue >= daily_left:
        return DAILY_LIMIT
    return None


def _budget_left(db: ServingDB, campaign: Campaign, stock_left: int) -> int:
    """How many more coupons the campaign's budget can reserve (more than the stock left
    when it has no budget, or its coupons cost nothing), read under the campaign's lock.

    The same decision as the single path's reservation one coupon at a time
    (:meth:`Issuer._reserve`): every coupon of a campaign reserves the same worst case."""
    unlimited = max(stock_left, 0) + 1
    if campaign.budget is None:
        return unlimited
    cents = to_cents(campaign.max_reduction)
    if cents <= 0:
        return unlimited
    room = to_cents(campaign.budget) - budget_use(db, campaign.name).used_cents
    return max(room // cents, 0)


def _conflicting_replay(db: ServingDB, sql: dict[str, str],
                        campaign: Campaign) -> tuple[object, ...] | None:
    """The first plan row (key, prior fingerprint, coupon's campaign and customer) whose
    key was used for another request than this campaign's issue to that customer."""
    prefix = f"issue{_SEP}{campaign.name}{_SEP}"
    return db.fetchone(
        f"SELECT idem_key, prior_fingerprint, coupon_campaign, coupon_customer FROM {_PLAN} "
        f"WHERE fate = '{REPLAYED}' AND NOT coalesce("
        f"  (prior_operation IS NOT NULL AND prior_fingerprint = "
        f"     ? || {sql['text'].format('customer_id')})"
        "   OR (prior_operation IS NULL AND coupon_campaign = ? "
        "       AND coupon_customer = customer_id), 1 = 0) "
        "ORDER BY coupon_id LIMIT 1", (prefix, campaign.name))


def _check_replays(db: ServingDB, sql: dict[str, str], campaign: Campaign) -> None:
    """Raise :class:`IdempotencyConflict` if a batch key was used for another request."""
    row = _conflicting_replay(db, sql, campaign)
    if row is None:
        return
    key, fingerprint, other_campaign, other_customer = row
    first = (" ".join(str(fingerprint).split(_SEP)) if fingerprint is not None
             else f"issue {other_campaign} {other_customer}")
    raise IdempotencyConflict(
        f"idempotency key '{key}' was already used for a different request ({first}); "
        f"the batch of '{campaign.name}' stopped before writing this chunk",
        hint="a batch key belongs to the batch; use a new key for a new request",
    )


def _write(issuer: Issuer, campaign: Campaign, now: datetime, decision: _Decision,
           refusals: bool) -> int:
    """Insert the chunk's coupons and (when it has ``refusals`` to record) its recorded
    refusals, as ``decision`` says, and count the coupons up; returns the number of
    coupons issued."""
    db = issuer.db
    stored = to_db(now)
    day = business_day(now)
    valid_from, valid_until = campaign.validity.period(now)
    issued_where, issued_params = decision.issued()
    issued = db.execute(_INSERT_COUPONS.format(issued=issued_where), (
        campaign.name, campaign.template.kind, str(campaign.template.value),
        int(campaign.exclusive), campaign.on_failed_drawdown,
        ",".join(sorted(campaign.channels)), campaign.lease_seconds, stored, day,
        to_db(valid_from), to_db(valid_until), stored, *issued_params,
    )).rowcount
    if refusals:
        prefix = f"issue{_SEP}{campaign.name}{_SEP}"
        sql_text = "customer_id" if db.dialect == "sqlite" else "customer_id::text"
        refused, refused_params = decision.recorded()
        db.execute(
            "INSERT INTO issuance_requests (idempotency_key, operation, fingerprint, ok, "
            f"reason, coupon_id, status, created_at) SELECT idem_key, 'issue', ? || {sql_text}, "
            f"0, fate, NULL, NULL, ? FROM {_PLAN} WHERE {refused}",
            (prefix, stored, *refused_params))
    if issued:
        db.execute(_COUNT_UP, (campaign.name, issued, campaign.name, day.isoformat(), issued))
    if issued and campaign.budget is not None:
        reserve_planned(db, campaign.name, to_cents(campaign.max_reduction), _PLAN,
                        issued_where, issued, now, issued_params)
    return issued


def _fates(db: ServingDB) -> Counter[str]:
    """How many of the chunk's candidates have each fate other than ``issued``."""
    return Counter({str(fate): int(n) for fate, n in db.fetchall(
        f"SELECT fate, count(*) FROM {_PLAN} WHERE fate <> '{ISSUED}' GROUP BY fate")})


def _tally(db: ServingDB, report: BatchReport, fates: Counter[str]) -> None:
    """Add the chunk's refusals (:func:`_fates`) and replayed results to ``report`` (the
    few replayed rows grouped apart: grouping every row by one column sorts half as much
    as by four)."""
    report.refused.update({fate: n for fate, n in fates.items() if fate != REPLAYED})
    if not fates[REPLAYED]:
        return
    replayed = db.fetchall(
        f"SELECT prior_operation IS NULL, prior_ok, prior_reason, count(*) FROM {_PLAN} "
        f"WHERE fate = '{REPLAYED}' GROUP BY prior_operation IS NULL, prior_ok, prior_reason")
    for no_request, prior_ok, prior_reason, n in replayed:
        if no_request or prior_ok:
            report.replayed_issued += int(n)
        else:
            report.refused[str(prior_reason)] += int(n)


def issue_batch(issuer: Issuer, campaign: Campaign, day: date, *,
                chunk_size: int | None = None) -> BatchReport:
    """Offer one coupon of ``campaign`` to every eligible customer, keyed by ``day``.

    Every limit applies exactly as for single issues sent one by one in coupon-id order
    (window, eligibility, stock, daily, per-customer, stacking), also while single
    issues run at the same moment. Refusals are recorded under their keys. Chunks of
    ``chunk_size`` customers are one transaction each (default: :data:`PG_CHUNK` on
    PostgreSQL; on SQLite all at once, or :data:`SQLITE_CHUNK` for a segment larger than
    :data:`SQLITE_WHOLE`, so single issues never wait long for the write lock). Returns
    the counts.
    """
    db = issuer.db
    sql = _dialect_sql(db)
    if chunk_size is None and db.dialect == "postgresql":
        chunk_size = PG_CHUNK
    if chunk_size is None and _members(db, campaign) > SQLITE_WHOLE:
        chunk_size = SQLITE_CHUNK
    report = BatchReport(campaign.name, day)
    with db.bulk_cache():
        _run_batch(issuer, sql, campaign, day, chunk_size, report)
    return report


def _members(db: ServingDB, campaign: Campaign) -> int:
    """How many customers the campaign's segment has in ``coupon_eligibility``: as its
    last sync left it (``sync_state``, written with the rows), else counted (0.08 s at
    780k). It only sizes the transactions; the candidates are read under the lock."""
    synced = db.scalar("SELECT members FROM sync_state WHERE segment = ?",
                       (campaign.target_segment,))
    if synced is not None:
        return int(synced)
    return int(db.scalar("SELECT count(*) FROM coupon_eligibility WHERE segment = ?",
                         (campaign.target_segment,)) or 0)


def _run_batch(issuer: Issuer, sql: dict[str, str], campaign: Campaign, day: date,
               chunk_size: int | None, report: BatchReport) -> None:
    """:func:`issue_batch`'s work, filling ``report``."""
    db = issuer.db
    try:
        _create_tables(db, sql, candidates=chunk_size is not None)
        if chunk_size is None:
            now = issuer.clock.now()
            with db.transaction():
                live = live_refusal(db, campaign) is None
                decision = _decide(issuer, sql, campaign, now,
                                   _segment_source(sql, campaign, day, None), live)
                _finish(issuer, sql, campaign, now, report, decision)
            report.eligible = sum(report.refused.values()) + report.total_issued
            return
        report.eligible = _fill_candidates(db, sql, campaign, day)
        for first in range(1, report.eligible + 1, chunk_size):
            last = min(first + chunk_size - 1, report.eligible)
            now = issuer.clock.now()
            with db.transaction():
                rows = []
                if db.dialect == "postgresql":
                    rows = db.fetchall(f"SELECT customer_id FROM {_CANDIDATES} "
                                       "WHERE seq BETWEEN ? AND ?", (first, last))
                    issuer.lock_keys(batch_key(campaign.name, c, day) for (c,) in rows)
                live = live_refusal(db, campaign, lock=True) is None
                if db.dialect == "postgresql":
                    issuer.lock_customers(int(c) for (c,) in rows)
                    issuer.lock_campaign(campaign.name)
                db.execute(f"DELETE FROM {_PLAN}")
                decision = _decide(issuer, sql, campaign, now,
                                   _segment_source(sql, campaign, day, (first, last)),
                                   live)
                _finish(issuer, sql, campaign, now, report, decision)
    finally:
        for table in (_CANDIDATES, _PLAN):
            db.execute(f"DROP TABLE IF EXISTS {table}")


def _finish(issuer: Issuer, sql: dict[str, str], campaign: Campaign, now: datetime,
            report: BatchReport, decision: _Decision) -> None:
    """Check the replays, write the plan and count it into ``report`` (the fates of
    ``decision``, from :func:`_decide`, tell whether there are replays to check and
    refusals to record: at 1M new customers the scans it saves took 0.2 s)."""
    fates = decision.fates
    if fates[REPLAYED]:
        _check_replays(issuer.db, sql, campaign)
    report.issued += _write(issuer, campaign, now, decision,
                            refusals=any(fates[fate] for fate in RECORDED))
    _tally(issuer.db, report, fates)


def issue_each(issuer: Issuer, requests: Sequence[tuple[Campaign, int, str]],
               now: datetime) -> list[Outcome]:
    """Issue each ``(campaign, customer, key)`` as :meth:`Issuer.issue_in_transaction`
    would one after the other, in order, inside the caller's transaction (SQLite); their
    outcomes in order.

    The requests are taken in runs that name each customer and each key once: requests of
    one run cannot meet (counters and budgets are per campaign, the per-customer and
    stacking limits per customer, a key's first result per key), so each campaign's
    requests of a run are decided together, in a few statements, as the batch decides its
    candidates (:func:`_issue_set`), and the next run sees what this one wrote. A
    campaign's requests are sent one by one when they are few (:data:`SET_BASED_FROM`),
    when the room left (stock, day, budget) does not cover every one that could be
    issued, or when a key was used for another request (its conflict is raised there)."""
    outcomes: list[Outcome | None] = [None] * len(requests)
    for run in _runs(requests):
        by_campaign: dict[str, list[int]] = {}
        for index in run:
            by_campaign.setdefault(requests[index][0].name, []).append(index)
        for indexes in by_campaign.values():
            campaign = requests[indexes[0]][0]
            pairs = [(requests[i][1], requests[i][2]) for i in indexes]
            decided = (_issue_set(issuer, campaign, pairs, now)
                       if len(pairs) >= SET_BASED_FROM else None)
            if decided is None:
                decided = [issuer.issue_in_transaction(campaign, customer, key, now)
                           for customer, key in pairs]
            for index, outcome in zip(indexes, decided, strict=True):
                outcomes[index] = outcome
    return [outcome for outcome in outcomes if outcome is not None]


def _runs(requests: Sequence[tuple[Campaign, int, str]]) -> Iterator[list[int]]:
    """The indexes of ``requests`` in consecutive runs, each naming a customer and a key
    at most once."""
    run: list[int] = []
    customers: set[int] = set()
    keys: set[str] = set()
    for index, (_, customer, key) in enumerate(requests):
        if int(customer) in customers or key in keys:
            yield run
            run, customers, keys = [], set(), set()
        run.append(index)
        customers.add(int(customer))
        keys.add(key)
    if run:
        yield run


def _issue_set(issuer: Issuer, campaign: Campaign, requests: list[tuple[int, str]],
               now: datetime) -> list[Outcome] | None:
    """Decide and write ``requests`` ((customer, key), each customer and key once) of
    ``campaign`` as one by one, in the caller's transaction, through the batch's plan;
    their outcomes in order. None, with nothing written, when that takes them one by
    one: the room left does not cover every issuable request, or a key's earlier request
    was another one."""
    db = issuer.db
    sql = _dialect_sql(db)
    live = live_refusal(db, campaign, lock=True) is None
    try:
        _create_tables(db, sql, candidates=False)
        db.execute(f"DROP TABLE IF EXISTS {_REQUESTS}")
        db.execute(f"CREATE TEMP TABLE {_REQUESTS} (seq {sql['int']} PRIMARY KEY, "
                   "customer_id BIGINT NOT NULL, idem_key VARCHAR(300) NOT NULL, "
                   "coupon_id VARCHAR(40) NOT NULL)")
        db.executemany(f"INSERT INTO {_REQUESTS} (seq, customer_id, idem_key, coupon_id) "
                       "VALUES (?, ?, ?, ?)",
                       [(seq, int(customer), key, coupon_id_for(key))
                        for seq, (customer, key) in enumerate(requests)])
        decision = _decide(issuer, sql, campaign, now, _Source(
            f"SELECT customer_id, coupon_id, idem_key FROM {_REQUESTS}", (),
            _RECHECK, (campaign.target_segment,)), live)
        if decision.cut is not None or (
                decision.fates[REPLAYED] and _conflicting_replay(db, sql, campaign)):
            return None
        _write(issuer, campaign, now, decision,
               refusals=any(decision.fates[fate] for fate in RECORDED))
        planned = {str(key): _outcome(fate, operation, ok, reason, coupon_id)
                   for key, fate, operation, ok, reason, coupon_id in db.fetchall(
                       f"SELECT idem_key, fate, prior_operation, prior_ok, prior_reason, "
                       f"coupon_id FROM {_PLAN}")}
    finally:
        for table in (_REQUESTS, _PLAN):
            db.execute(f"DROP TABLE IF EXISTS {table}")
    return [planned[key] for _, key in requests]


def _outcome(fate: str, operation: str | None, ok: int | None, reason: str | None,
             coupon_id: str) -> Outcome:
    """A planned request's outcome, as :meth:`Issuer.issue_in_transaction` returns it."""
    if fate == ISSUED:
        return Outcome("issue", True, None, coupon_id, UNUSED)
    if fate != REPLAYED:
        return Outcome("issue", False, fate)
    if operation is not None:  # a refusal recorded under the key
        return Outcome(operation, bool(ok), reason, None, None, replayed=True)
    return Outcome("issue", True, None, coupon_id, UNUSED, replayed=True)
