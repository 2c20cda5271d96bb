"""The coupon ledger and the campaign budget (tables in :mod:`issuance.economics_schema`).

Every function runs inside the caller's transaction (which holds the campaign's lock on
an issue, the coupon's row lock otherwise) and keeps ``campaign_budget`` equal to the
ledger's sums:

* issue: :func:`reserve` the coupon's worst-case reduction, or refuse when
  ``reserved + booked + reservation`` would pass the budget;
* confirm: :func:`book` the reduction for the loan and release the reservation;
* reverse before confirm, expiry, operator void: :func:`release_reservations`;
* reverse after confirm: :func:`reverse_booking` books a ``reversal`` of what was booked
  for that loan (the entry counts against ``book``); a coupon restored by it reserves
  again (:func:`reserve`).

Amounts are whole cents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal

from issuance.clock import to_db
from serving.db import ServingDB

_ENTRY = ("INSERT INTO coupon_ledger (coupon_id, campaign, loan_id, kind, amount_cents, at, "
          "request_key) VALUES (?, ?, ?, ?, ?, ?, ?)")
_ENSURE = ("INSERT INTO campaign_budget (campaign, reserved_cents, booked_cents) VALUES (?, 0, 0) "
           "ON CONFLICT (campaign) DO NOTHING")
_ADD = ("UPDATE campaign_budget SET reserved_cents = reserved_cents + ?, "
        "booked_cents = booked_cents + ? WHERE campaign = ?")


def to_cents(amount: Decimal) -> int:
    """Yuan to whole cents, rounding up a fraction of a cent (a reservation never falls
    short).

    >>> to_cents(Decimal("12.345")), to_cents(Decimal("7"))
    (1235, 700)
    """
    return int((amount * 100).to_integral_value(rounding=ROUND_CEILING))


def yuan(cents: int) -> Decimal:
    """Whole cents as yuan with two decimals.

    >>> str(yuan(12345))
    '123.45'
    """
    return (Decimal(int(cents)) / 100).quantize(Decimal("0.01"))


@dataclass(frozen=True)
class BudgetUse:
    """A campaign's budget use: reserved and booked cents (the ledger's sums)."""

    reserved_cents: int = 0
    booked_cents: int = 0

    @property
    def used_cents(self) -> int:
        return self.reserved_cents + self.booked_cents


def budget_use(db: ServingDB, campaign: str, *, lock: bool = False) -> BudgetUse:
    """The campaign's reserved and booked cents (0, 0 before its first entry)."""
    suffix = " FOR UPDATE" if lock and db.dialect == "postgresql" else ""
    row = db.fetchone("SELECT reserved_cents, booked_cents FROM campaign_budget "
                      f"WHERE campaign = ?{suffix}", (campaign,))
    return BudgetUse(int(row[0]), int(row[1])) if row else BudgetUse()


def reserve(db: ServingDB, campaign: str, budget_cents: int, coupon_id: str, cents: int,
            now: datetime, key: str | None) -> bool:
    """Reserve ``cents`` for a new coupon unless that would pass ``budget_cents``.

    The caller holds the campaign's lock (the issue path), so the check and the write
    are one decision. Returns False (nothing written) when the budget would be exceeded.
    """
    if budget_use(db, campaign).used_cents + cents > budget_cents:
        return False
    db.execute(_ENSURE, (campaign,))
    db.execute(_ADD, (cents, 0, campaign))
    db.execute(_ENTRY, (coupon_id, campaign, None, "reserve", cents, to_db(now), key))
    return True


def reserve_planned(db: ServingDB, campaign: str, cents: int, table: str, where: str,
                    count: int, now: datetime, params: Sequence[object] = ()) -> None:
    """The batch: reserve ``cents`` for each of the ``count`` coupons issued now, listed in
    ``table`` (``coupon_id``, ``idem_key``) rows matching ``where`` (fixed text written by
    :mod:`issuance.batch`, never user input; ``params``: its parameters), and add them to
    the campaign's budget row. The caller decided, under the campaign's lock, that the
    budget covers them."""
    db.execute(
        "INSERT INTO coupon_ledger (coupon_id, campaign, loan_id, kind, amount_cents, at, "
        f"request_key) SELECT coupon_id, ?, NULL, 'reserve', ?, ?, idem_key FROM {table} "
        f"WHERE {where} ORDER BY coupon_id", (campaign, cents, to_db(now), *params))
    db.execute(_ENSURE, (campaign,))
    db.execute(_ADD, (cents * count, 0, campaign))


def outstanding(db: ServingDB, coupon_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
    """Per coupon with a reservation still held: (campaign, cents)."""
    if not coupon_ids:
        return {}
    marks = ", ".join("?" for _ in coupon_ids)
    rows = db.fetchall(
        "SELECT coupon_id, campaign, sum(CASE WHEN kind = 'reserve' THEN amount_cents "
        "WHEN kind = 'release' THEN -amount_cents ELSE 0 END) "
        f"FROM coupon_ledger WHERE coupon_id IN ({marks}) GROUP BY coupon_id, campaign",
        list(coupon_ids))
    return {str(c): (str(camp), int(n)) for c, camp, n in rows if int(n) > 0}


def release_reservations(db: ServingDB, coupon_ids: Sequence[str], now: datetime,
                         key: str | None, *, loan_id: str | None = None) -> int:
    """Give back the reservations still held by ``coupon_ids``; the cents released."""
    held = outstanding(db, coupon_ids)
    at = to_db(now)
    for coupon_id, (campaign, cents) in sorted(held.items()):
        db.execute(_ENTRY, (coupon_id, campaign, loan_id, "release", cents, at, key))
        db.execute(_ADD, (-cents, 0, campaign))
    return sum(cents for _, cents in held.values())


def book(db: ServingDB, coupon_id: str, campaign: str, loan_id: str, now: datetime,
         key: str | None) -> int:
    """Confirm: book the coupon's reduction on ``loan_id`` and release its reservation.

    The reduction is the trial reduction computed at occupy from the loan's terms; when
    the occupy did not give them, the reservation (the worst case) is booked instead; with
    neither, nothing is booked. Returns the cents booked.
    """
    row = db.fetchone("SELECT reduction_cents FROM coupon_loans WHERE coupon_id = ? "
                      "AND loan_id = ?", (coupon_id, loan_id))
    held = outstanding(db, [coupon_id]).get(coupon_id, (campaign, 0))[1]
    cents = int(row[0]) if row and row[0] is not None else held
    at = to_db(now)
    db.execute(_ENSURE, (campaign,))
    if cents:
        db.execute(_ENTRY, (coupon_id, campaign, loan_id, "book", cents, at, key))
    if held:
        db.execute(_ENTRY, (coupon_id, campaign, loan_id, "release", held, at, key))
    db.execute(_ADD, (-held, cents, campaign))
    return cents


def reverse_booking(db: ServingDB, coupon_id: str, campaign: str, loan_id: str,
                    now: datetime, key: str | None) -> int:
    """Reverse after confirm: book a ``reversal`` of what is still booked for ``loan_id``
    on the coupon (a new entry; nothing is changed) and take it off the campaign's
    booked sum. Returns the cents reversed (0 when nothing was booked)."""
    cents = int(db.scalar(
        "SELECT coalesce(sum(CASE WHEN kind = 'book' THEN amount_cents WHEN kind = 'reversal' "
        "THEN -amount_cents ELSE 0 END), 0) FROM coupon_ledger WHERE coupon_id = ? "
        "AND loan_id = ?", (coupon_id, loan_id)) or 0)
    if cents > 0:
        db.execute(_ENSURE, (campaign,))
        db.execute(_ENTRY, (coupon_id, campaign, loan_id, "reversal", cents, to_db(now), key))
        db.execute(_ADD, (0, -cents, campaign))
    return max(cents, 0)


def reserved_before(db: ServingDB, coupon_id: str) -> bool:
    """Whether the coupon ever held a reservation (it was issued under a budget)."""
    return db.scalar("SELECT count(*) FROM coupon_ledger WHERE coupon_id = ? "
                     "AND kind = 'reserve'", (coupon_id,)) not in (None, 0)


def remember_loan(db: ServingDB, coupon_id: str, loan_id: str, context: str,
                  reduction_cents: int | None, now: datetime) -> None:
    """Store the loan context of an occupy and the coupon's reduction on that loan."""
    db.execute(
        "INSERT INTO coupon_loans (coupon_id, loan_id, context, reduction_cents, at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (coupon_id, loan_id) DO UPDATE SET "
        "context = excluded.context, reduction_cents = excluded.reduction_cents, at = excluded.at",
        (coupon_id, loan_id, context, reduction_cents, to_db(now)))


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger row."""

    entry_id: int
    coupon_id: str
    campaign: str
    loan_id: str | None
    kind: str
    cents: int
    at: datetime


def entries(db: ServingDB, *, campaign: str | None = None,
            coupon_id: str | None = None) -> list[LedgerEntry]:
    """Ledger entries of a campaign or a coupon, oldest first."""
    where, params = [], []
    if campaign is not None:
        where.append("campaign = ?")
        params.append(campaign)
    if coupon_id is not None:
        where.append("coupon_id = ?")
        params.append(coupon_id)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = db.fetchall("SELECT entry_id, coupon_id, campaign, loan_id, kind, amount_cents, at "
                       f"FROM coupon_ledger{clause} ORDER BY entry_id", params)
    return [LedgerEntry(int(e), str(c), str(camp), loan, str(k), int(n), at)
            for e, c, camp, loan, k, n, at in rows]


def sums(db: ServingDB, campaign: str) -> dict[str, int]:
    """The ledger's sums per kind for a campaign, in cents (every kind present). Held
    reservations are ``reserve − release``, the net booked reduction ``book − reversal``."""
    rows = db.fetchall("SELECT kind, sum(amount_cents) FROM coupon_ledger WHERE campaign = ? "
                       "GROUP BY kind", (campaign,))
    found = {str(k): int(n) for k, n in rows}
    return {k: found.get(k, 0) for k in ("reserve", "book", "release", "reversal")}
