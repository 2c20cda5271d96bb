"""The coupon-economics part of ``kequn demo``: approval, a trial with and without a
coupon, and the ledger after a few drawdowns.

Only a live campaign issues, so before the demo builds its days :func:`approve_campaigns`
takes every shipped campaign through the approval state machine with two different users
of the project's ``roles.yaml``: submitted (and later launched) by the first activity
approver, approved by another (and the budget by a budget approver when a campaign has
one), each step one audit log entry. After the build, :func:`economics_demo` shows one
campaign's approval, a trial, and a few customers who hold its coupon drawing a loan:
each occupy carries the loan's context and terms, each confirm books the coupon's
reduction on that loan into the ledger.
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
from serving import audit

DEMO_CAMPAIGN = "drawdown_rate_discount"
DRAWDOWNS = 3


def _loan_terms(day: date, principal: str) -> dict[str, object]:
    return {"principal": Decimal(principal), "annual_rate": Decimal("0.18"), "term": 12,
            "method": "equal_installment", "start": day}


def approve_campaigns(kequn: KequnContext) -> list[str]:
    """Take every campaign of the project live (submit, approve, launch) on the serving
    database, as the users of ``roles.yaml`` would; the lines to print."""
    from issuance.schema import migrate

    campaigns = kequn.project.campaigns
    if not campaigns:
        return []
    db = kequn.connect_serving()
    try:
        migrate(db)
        done = {name: approval.take_live(db, campaign, kequn.roles)
                for name, campaign in sorted(campaigns.items())}
    finally:
        db.close()
    steps = sorted({", ".join(f"{action} by {user}" for action, user in s)
                    for s in done.values() if s})
    if not steps:
        return [f"approval: all {len(campaigns)} campaigns already live"]
    return [f"approval: {len(campaigns)} campaigns through the approval state machine "
            f"({'; '.join(steps)}): only a live campaign issues"]


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
            approval.take_live(db, campaign, roles)
            state = approval.read_state(db, campaign.name)
        entries = len(audit.entries(db, obj=f"campaign:{campaign.name}"))
        lines.append(f"approval: {campaign.name} submitted by {state.submitted_by}, activity "
                     f"approved by {state.activity_approved_by}, launched -> {state.state} "
                     f"({entries} audit entries; kequn audit --object campaign:{campaign.name})")
        holders = [int(c) for (c,) in db.fetchall(
            "SELECT DISTINCT customer_id FROM coupons WHERE campaign = ? AND status = 'unused' "
            "ORDER BY customer_id LIMIT ?", (campaign.name, DRAWDOWNS))]
        if not holders:
            return [*lines, f"no unused {campaign.name} coupons to draw on"]
        loan = Loan(**_loan_terms(day, "10000"))  # type: ignore[arg-type]
        plain = repayment_plan(loan)
        with_coupon = repayment_plan(loan, [campaign.template.coupon])
        lines.append(
            f"trial: 10,000.00 at 18% for 12 months, equal installments from {day}: interest "
            f"{plain.total_interest:,}, payable {plain.total_payable:,}; with "
            f"'{campaign.template.describe()}': reduction {with_coupon.total_reduction:,}, "
            f"payable {with_coupon.total_payable:,}")
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
                         f"({context.principal:,}) used {', '.join(usable.best)}: reduction "
                         f"{usable.best_reduction:,}")
        totals = sums(db, campaign.name)
        lines.append(f"ledger {campaign.name}: booked {yuan(totals['book']):,}, "
                     f"reserved {yuan(totals['reserve'] - totals['release']):,}"
                     f" (kequn campaigns ledger {campaign.name})")
    return lines
