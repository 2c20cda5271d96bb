"""Whether one more coupon may be issued: the limits as a pure decision.

The service reads the counters inside its transaction (holding the campaign's lock),
then asks :func:`refusal`; the same function drives the model in the property tests.
Reasons are checked in a fixed order, so a request that breaks several limits always
gets the same answer.

>>> snapshot = Snapshot(eligible=True, stock_issued=10, day_issued=0,
...                     customer_issued=0, conflicting_coupon=False)
>>> refusal_for_counts(total_stock=10, daily_limit=5, per_customer_limit=1,
...                    in_window=True, snapshot=snapshot)
'stock_exhausted'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from project.campaign import Campaign

OUTSIDE_WINDOW: Final = "outside_window"
NOT_ELIGIBLE: Final = "not_eligible"
STOCK_EXHAUSTED: Final = "stock_exhausted"
DAILY_LIMIT: Final = "daily_limit"
PER_CUSTOMER_LIMIT: Final = "per_customer_limit"
EXCLUSIVE_CONFLICT: Final = "exclusive_conflict"
NOT_LIVE: Final = "not_live"
BUDGET_EXHAUSTED: Final = "budget_exhausted"

ISSUE_REFUSALS: Final = (
    OUTSIDE_WINDOW,
    NOT_ELIGIBLE,
    STOCK_EXHAUSTED,
    DAILY_LIMIT,
    PER_CUSTOMER_LIMIT,
    EXCLUSIVE_CONFLICT,
)
"""The limits :func:`refusal_for_counts` decides, in its order."""
BUDGET_REFUSALS: Final = (NOT_LIVE, BUDGET_EXHAUSTED)
"""``not_live`` is checked first of all, for every campaign (right after a replayed key:
:func:`issuance.approval.live_refusal`); ``budget_exhausted`` after the limits above, for
a campaign with a budget (:meth:`Issuer._reserve`)."""
NOT_RECORDED: Final = frozenset({NOT_LIVE, STOCK_EXHAUSTED, DAILY_LIMIT, BUDGET_EXHAUSTED})
"""Refusals that say the campaign had no room (or was not live) at that moment, not
that the request itself cannot be granted: they are not recorded under the request's
key, so the same request is decided again when it is sent again (it issues once the
campaign is live, its stock or budget is raised, or the next day's limit opens). Every
other refusal is the key's first result and is replayed. A batch therefore records one
row per refused customer only for refusals of the customer's own (window, eligibility,
per-customer limit, stacking), not for the hundreds of thousands its daily limit turns
away."""

MESSAGES: Final[dict[str, str]] = {
    OUTSIDE_WINDOW: "the campaign is not running at this time",
    NOT_ELIGIBLE: "the customer is not in the campaign's target segment",
    STOCK_EXHAUSTED: "the campaign's stock is used up",
    DAILY_LIMIT: "today's issuance limit is reached",
    PER_CUSTOMER_LIMIT: "the customer has received as many coupons as the campaign allows",
    EXCLUSIVE_CONFLICT: "an exclusive coupon cannot be held together with another live coupon",
    NOT_LIVE: "the campaign is not live: it needs approval and launch, or its definition "
              "changed since approval (kequn campaigns state NAME)",
    BUDGET_EXHAUSTED: "the campaign's budget cannot cover one more coupon's worst-case cost",
}


@dataclass(frozen=True)
class Snapshot:
    """The counters and facts read for one issue request, under the campaign lock."""

    eligible: bool
    stock_issued: int
    day_issued: int
    customer_issued: int
    conflicting_coupon: bool


def refusal_for_counts(
    *,
    total_stock: int,
    daily_limit: int,
    per_customer_limit: int,
    in_window: bool,
    snapshot: Snapshot,
) -> str | None:
    """The first limit that one more coupon would break, or None when it may be issued."""
    if not in_window:
        return OUTSIDE_WINDOW
    if not snapshot.eligible:
        return NOT_ELIGIBLE
    if snapshot.stock_issued >= total_stock:
        return STOCK_EXHAUSTED
    if snapshot.day_issued >= daily_limit:
        return DAILY_LIMIT
    if snapshot.customer_issued >= per_customer_limit:
        return PER_CUSTOMER_LIMIT
    if snapshot.conflicting_coupon:
        return EXCLUSIVE_CONFLICT
    return None


def refusal(campaign: Campaign, now: datetime, snapshot: Snapshot) -> str | None:
    """The reason ``campaign`` may not issue one more coupon at ``now``, or None."""
    return refusal_for_counts(
        total_stock=campaign.total_stock,
        daily_limit=campaign.effective_daily_limit,
        per_customer_limit=campaign.per_customer_limit,
        in_window=campaign.in_window(now),
        snapshot=snapshot,
    )
