"""Which of a customer's coupons a loan may use, and what each takes off (best first).

For a loan context (:class:`project.scope.LoanContext` with the loan's terms) every coupon
the customer holds that is unused and valid now is checked exactly as an occupy would
check it (channel, the campaign's loan-time scope, its bounds) and tried on the loan
(:func:`project.trial.repayment_plan`). The best choice honours stacking: either the one
exclusive coupon that takes most, or every usable stackable coupon together (applied in
order of their own reductions, each to the interest the previous left), whichever takes
more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from issuance.ledger import yuan
from issuance.service import Issuer
from issuance.states import UNUSED
from kequn.errors import ExecutionError, Location
from project.scope import CHANNEL_OUT_OF_SCOPE, LoanContext
from project.trial import Coupon, repayment_plan


@dataclass(frozen=True)
class Option:
    """One usable coupon and its reduction on the loan."""

    coupon_id: str
    campaign: str
    describe: str
    stacking: str
    reduction: Decimal
    template: Coupon = field(repr=False, compare=False)


@dataclass(frozen=True)
class Usable:
    """Usable coupons best first, the refused ones with their reason, and the best choice."""

    options: list[Option]
    refused: list[tuple[str, str]]
    best: list[str]
    best_reduction: Decimal

    def to_dict(self) -> dict[str, Any]:
        return {
            "usable": [{"coupon_id": o.coupon_id, "campaign": o.campaign,
                        "coupon": o.describe, "stacking": o.stacking,
                        "reduction": str(o.reduction)} for o in self.options],
            "refused": [{"coupon_id": c, "reason": r} for c, r in self.refused],
            "best": self.best, "best_reduction": str(self.best_reduction),
        }


def usable_coupons(issuer: Issuer, customer_id: int, context: LoanContext) -> Usable:
    """The coupons of ``customer_id`` usable on the loan of ``context``, best first."""
    loan = context.loan
    if loan is None:
        raise ExecutionError("the loan context needs the loan's terms to try coupons: "
                             "principal, annual_rate, term and start", Location())
    now = issuer.clock.now()
    options: list[Option] = []
    refused: list[tuple[str, str]] = []
    for coupon in issuer.coupons_of(customer_id):
        if coupon.effective_status(now) != UNUSED or coupon.valid_from > now:
            continue
        if context.channel is not None and context.channel not in coupon.channels:
            refused.append((coupon.coupon_id, CHANNEL_OUT_OF_SCOPE))
            continue
        scoped = issuer._scope(coupon, context)
        if isinstance(scoped, str):
            refused.append((coupon.coupon_id, scoped))
            continue
        template = Coupon(coupon.template_kind, Decimal(coupon.template_value))
        options.append(Option(coupon.coupon_id, coupon.campaign, template.describe(),
                              "exclusive" if coupon.exclusive else "stackable",
                              yuan(int(scoped or 0)), template))
    options.sort(key=lambda o: (-o.reduction, o.coupon_id))
    best: list[str] = []
    best_reduction = Decimal("0.00")
    exclusive = [o for o in options if o.stacking == "exclusive"]
    if exclusive:
        best, best_reduction = [exclusive[0].coupon_id], exclusive[0].reduction
    stackable = [o for o in options if o.stacking == "stackable"]
    if stackable:
        together = repayment_plan(loan, [o.template for o in stackable]).total_reduction
        if together > best_reduction:
            best, best_reduction = [o.coupon_id for o in stackable], together
    return Usable(options, refused, best, best_reduction)
