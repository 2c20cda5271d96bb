"""The coupon-economics part of ``kequn demo``: approval, cost forecast, a trial with and
without a coupon, and the ledger after a few drawdowns.

The shipped campaigns have no budget, so they issue without approval (the daily build
issues them as before); the demo still takes one of them through the approval states
(submitted by ``demo.maker``, the activity approved by the first activity approver of
``roles.yaml``, launched), each step one audit log entry. Then a few customers who hold a
coupon draw a loan: each occupy carries the loan's context and terms, each confirm books
the coupon's reduction on that loan into the ledger.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from app.context import KequnContext
from issuance import approval
from issuance.ledger import sums, yuan
from issuance.usable import usable_coupons
from project.scope import LoanContext
from project.trial import Loan, repayment_plan

DEMO_CAMPAIGN = "drawdown_rate_discount"
MAKER = "demo.maker"
DRAWDOWNS = 3


def _loan_terms(day: date, principal: str) -> dict[str, object]:
    return {"principal": Decimal(principal), "annual_rate": Decimal("0.18"), "term": 12,
            "method": "equal_installment", "start": day}


def economics_demo(kequn: KequnContext, day: date) -> list[str]:
    """Run the demo's economics steps on the serving database; the lines to print."""
    project = kequn.project
    if DEMO_CAMPAIGN not in project.campaigns:
        return [f"(no campaign '{DEMO_CAMPAIGN}': economics demo skipped)"]
    campaign = project.campaigns[DEMO_CAMPAIGN]
    roles = kequn.roles
    approvers = roles.who("activity_approvers")
    lines: list[str] = []
    with kequn.issuer() as issuer:
        db = issuer.db
        state = approval.read_state(db, campaign.name)
        if state.state == "draft" and approvers:
            approval.submit(db, campaign, MAKER)
            state = approval.approve(db, campaign, approvers[0], "activity", roles)
            state = approval.launch(db, campaign, MAKER)
            lines.append(f"approval: {campaign.name} submitted by {MAKER}, activity approved "
                         f"by {approvers[0]}, launched -> {state.state} (3 audit entries)")
        else:
            lines.append(f"approval: {campaign.name} is {state.state}")
        holders = [int(c) for (c,) in db.fetchall(
            "SELECT DISTINCT customer_id FROM coupons WHERE campaign = ? AND status = 'unused' "
            "ORDER BY customer_id LIMIT ?", (campaign.name, DRAWDOWNS))]
        if not holders:
            return [*lines, f"no unused {campaign.name} coupons to draw on"]
        loan = Loan(**_loan_terms(day, "10000"))  # type: ignore[arg-type]
        plain = repayment_plan(loan)
        with_coupon = repayment_plan(loan, [campaign.template.coupon])
        lines.append(
            f"trial: 10000.00 at 18% for 12 months, equal installments from {day}: interest "
            f"{plain.total_interest}, payable {plain.total_payable}; with "
            f"'{campaign.template.describe()}': reduction {with_coupon.total_reduction}, "
            f"payable {with_coupon.total_payable}")
        for n, customer in enumerate(holders, 1):
            context = LoanContext(channel="APP", first_drawdown=False,
                                  **_loan_terms(day, f"{5000 * n}"))  # type: ignore[arg-type]
            usable = usable_coupons(issuer, customer, context)
            if not usable.best:
                lines.append(f"drawdown: customer {customer} has no usable coupon")
                continue
            loan_id = f"demo-{day}-{customer}"
            for coupon_id in usable.best:
                issuer.occupy(coupon_id, loan_id, f"demo-occupy-{loan_id}-{coupon_id}",
                              context=context)
                issuer.confirm(coupon_id, loan_id, f"demo-confirm-{loan_id}-{coupon_id}")
            lines.append(f"drawdown: customer {customer} loan {loan_id} "
                         f"({context.principal}) used {', '.join(usable.best)}: reduction "
                         f"{usable.best_reduction}")
        totals = sums(db, campaign.name)
        lines.append(f"ledger {campaign.name}: booked {yuan(totals['book'])}, "
                     f"reserved {yuan(totals['reserve'] - totals['release'])}"
                     f" (kequn campaigns ledger {campaign.name})")
    return lines
