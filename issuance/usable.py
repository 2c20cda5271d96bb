"""Which of a customer's coupons a loan may use, and what each takes off (best first).

For a loan context (:class:`project.scope.LoanContext` with the loan's terms) every coupon
the customer holds that is unused and valid now is checked exactly as an occupy would
check it (channel, the campaign's loan-time scope, its bounds) and tried on the loan
(:func:`project.trial.repayment_plan`). The best choice honours stacking: either the one
exclusive coupon that takes most, or every usable stackable coupon together (applied in
order of their own reductions, each to the interest the previous left), whichever takes
more.

With the loan's id in the context, the coupons that loan already holds (occupied under a
live lease, or used) count as an occupy would count them: an exclusive one held leaves
nothing else usable, and with stackable ones held an exclusive coupon is refused
``exclusive_conflict`` while the stackable ones combine with what the loan holds (the
best reduction is then the loan's total with the held coupons applied first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from issuance.clock import to_db
from issuance.ledger import yuan
from issuance.limits import EXCLUSIVE_CONFLICT
from issuance.service import Issuer
from issuance.states import UNUSED
from issuance.store import coupons_where
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
    held: list[str] = field(default_factory=list)
    """Coupons the loan already holds (with ``loan_id`` in the context)."""
    held_reduction: Decimal = Decimal("0.00")

    def to_dict(self) -> dict[str, Any]:
        return {
            "usable": [{"coupon_id": o.coupon_id, "campaign": o.campaign,
                        "coupon": o.describe, "stacking": o.stacking,
                        "reduction": str(o.reduction)} for o in self.options],
            "refused": [{"coupon_id": c, "reason": r} for c, r in self.refused],
            "best": self.best, "best_reduction": str(self.best_reduction),
            "held": self.held, "held_reduction": str(self.held_reduction),
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
    held = [] if context.loan_id is None else coupons_where(
        issuer.db, "loan_id = ? AND (status = 'used' OR (status = 'occupied' "
        "AND lease_until > ?)) ORDER BY coupon_id", (context.loan_id, to_db(now)))
    held_exclusive = any(c.exclusive for c in held)
    for coupon in issuer.coupons_of(customer_id):
        if coupon.effective_status(now) != UNUSED or coupon.valid_from > now:
            continue
        if context.channel is not None and context.channel not in coupon.channels:
            refused.append((coupon.coupon_id, CHANNEL_OUT_OF_SCOPE))
            continue
        if held and (held_exclusive or coupon.exclusive):
            refused.append((coupon.coupon_id, EXCLUSIVE_CONFLICT))
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
    held_templates = [Coupon(c.template_kind, Decimal(c.template_value)) for c in held]
    held_reduction = (repayment_plan(loan, held_templates).total_reduction if held
                      else Decimal("0.00"))
    best: list[str] = []
    best_reduction = held_reduction
    exclusive = [o for o in options if o.stacking == "exclusive"]
    if exclusive:  # only when the loan holds nothing (see the loop above)
        best, best_reduction = [exclusive[0].coupon_id], exclusive[0].reduction
    stackable = [o for o in options if o.stacking == "stackable"]
    if stackable:
        together = repayment_plan(
            loan, [*held_templates, *(o.template for o in stackable)]).total_reduction
        if together > best_reduction:
            best, best_reduction = [o.coupon_id for o in stackable], together
    return Usable(options, refused, best, best_reduction, [c.coupon_id for c in held],
                  held_reduction)
