"""``kequn trial``: the repayment plan of a loan, with or without coupons (借款试算).

Thin over :func:`project.trial.repayment_plan`; ``--coupon ID`` reads an issued coupon's
template from the serving database, ``--template kind=value`` (repeatable, applied in
order) tries a coupon that has not been issued.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer

from cli.common import kequn_context, parse_day

METHOD_HELP = "equal_installment (等额本息) or equal_principal (等额本金)."


def _decimal(text: str, option: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise typer.BadParameter(f"{text!r} is not a number", param_hint=option)
    return value


def parse_template(text: str):  # type: ignore[no-untyped-def]
    """``interest_free_days=30``, ``rate_discount=0.8`` (``rate_discount=0.8:3`` for the
    first 3 periods) or ``amount_off=200`` as a :class:`project.trial.Coupon`."""
    from project.trial import Coupon

    kind, sep, value = text.partition("=")
    if not sep:
        raise typer.BadParameter(f"{text!r} is not KIND=VALUE (e.g. interest_free_days=30)",
                                 param_hint="--template")
    amount, _, periods = value.partition(":")
    try:
        count = int(periods) if periods else None
    except ValueError:
        raise typer.BadParameter(f"{periods!r} is not a number of periods",
                                 param_hint="--template") from None
    return Coupon(kind.strip(), _decimal(amount, "--template"), count)


def trial(
    ctx: typer.Context,
    principal: Annotated[str, typer.Option("--principal", help="Principal in yuan.")],
    annual_rate: Annotated[str, typer.Option(
        "--annual-rate", help="Annual interest rate as a fraction (0.12 = 12%).")],
    term: Annotated[int, typer.Option("--term", help="Number of monthly periods.")],
    method: Annotated[str, typer.Option("--method", help=METHOD_HELP)],
    start: Annotated[str, typer.Option("--start", help="Disbursement day, YYYY-MM-DD.")],
    coupon: Annotated[list[str] | None, typer.Option(
        "--coupon", help="An issued coupon's id (repeatable).")] = None,
    template: Annotated[list[str] | None, typer.Option(
        "--template", help="A coupon template KIND=VALUE: interest_free_days=30, "
        "rate_discount=0.8[:PERIODS], amount_off=200 (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
) -> None:
    """The repayment plan per period (due day, principal, interest, reduction, payable) and
    its totals; amounts rounded half-up to the cent per period."""
    from kequn.errors import Location, ValidationError
    from project.trial import Coupon, Loan, TrialError, repayment_plan

    loan = Loan(_decimal(principal, "--principal"), _decimal(annual_rate, "--annual-rate"),
                term, method, parse_day(start, "--start"))
    coupons: list[Coupon] = []
    if coupon:
        with kequn_context(ctx).issuer(with_campaigns=False) as issuer:
            for coupon_id in coupon:
                found = issuer.coupon(coupon_id)
                if found is None:
                    raise ValidationError(f"no coupon '{coupon_id}'", Location())
                coupons.append(Coupon(found.template_kind, Decimal(found.template_value)))
    coupons.extend(parse_template(t) for t in template or ())
    try:
        plan = repayment_plan(loan, coupons)
    except TrialError as exc:
        raise ValidationError(str(exc), Location()) from None
    if as_json:
        typer.echo(json.dumps(plan.to_dict(), ensure_ascii=False, indent=2))
        return
    from rich.text import Text

    from cli.style import display, money, row, table

    described = "; ".join(c.describe() for c in coupons) or "no coupon"
    amounts = ("principal", "interest", "reduction", "payable")
    out = table("no", "due", "days", *amounts, numeric=("no", "days", *amounts),
                title=f"{money(loan.principal)} at {loan.annual_rate} for {loan.term} months, "
                f"{loan.method}, from {loan.start} ({described}); yuan")
    for p in plan.periods:
        row(out, p.no, p.due, p.days, money(p.principal), money(p.interest),
            money(p.reduction), money(p.payable))
    blank = Text("")
    row(out, "total", blank, blank, money(plan.total_principal), money(plan.total_interest),
        money(plan.total_reduction), money(plan.total_payable))
    display(out)


def register(app: typer.Typer) -> None:
    """Add the ``trial`` command."""
    app.command("trial")(trial)
