"""``kequn campaigns plan``: what a campaign may cost, before it is launched.

* eligible: the target segment's synced members (``coupon_eligibility``);
* issuable: at most one offer per eligible customer and per-customer limit, capped by the
  stock and by what the budget can reserve (budget ÷ the coupon's worst-case reduction);
* expected use: issuable × the campaign's ``expected_use_rate``;
* worst case: issuable × the worst-case reduction (every coupon used on the largest loan
  the bounds allow; never more than the budget);
* expected cost: expected use × the reduction on a typical loan (half the maximum
  principal, the maximum term and rate, equal installments, from the window's first day).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from issuance.ledger import budget_use, yuan
from project.campaign import Campaign
from project.trial import CENT, Loan, repayment_plan
from serving.db import ServingDB


@dataclass(frozen=True)
class Forecast:
    """A campaign's cost forecast (amounts in yuan)."""

    campaign: str
    eligible: int
    stock: int
    issuable: int
    expected_use: int
    max_reduction: Decimal
    typical_reduction: Decimal
    worst_case_cost: Decimal
    expected_cost: Decimal
    budget: Decimal | None
    reserved: Decimal
    booked: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(self).items()}


def forecast(db: ServingDB, campaign: Campaign) -> Forecast:
    """The forecast of ``campaign`` from its definition and the synced segment."""
    eligible = int(db.scalar("SELECT count(*) FROM coupon_eligibility WHERE segment = ?",
                             (campaign.target_segment,)) or 0)
    worst = campaign.max_reduction
    issuable = min(eligible * campaign.per_customer_limit, campaign.total_stock)
    if campaign.budget is not None and worst > 0:
        issuable = min(issuable, int(campaign.budget // worst))
    expected_use = int((issuable * campaign.expected_use_rate).to_integral_value(ROUND_HALF_UP))
    bounds = campaign.bounds
    typical = Loan((bounds.max_principal / 2).quantize(CENT), bounds.max_rate, bounds.max_term,
                   "equal_installment", campaign.window_start.date())
    typical_reduction = repayment_plan(typical, [campaign.template.coupon]).total_reduction
    use = budget_use(db, campaign.name)
    return Forecast(
        campaign=campaign.name, eligible=eligible, stock=campaign.total_stock,
        issuable=issuable, expected_use=expected_use, max_reduction=worst,
        typical_reduction=typical_reduction, worst_case_cost=(worst * issuable).quantize(CENT),
        expected_cost=(typical_reduction * expected_use).quantize(CENT), budget=campaign.budget,
        reserved=yuan(use.reserved_cents), booked=yuan(use.booked_cents))
