"""What coupons cost and who approves them: approval, budget plan, ledger, usable coupons,
operator void and the audit log. Thin commands over :mod:`issuance.approval`,
:mod:`issuance.ledger`, :mod:`issuance.usable` and :mod:`serving.audit`.

Commands that change state need an identity: ``--as USER`` or ``KEQUN_USER``.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from cli.common import kequn_context, parse_context
from cli.issuance import KeyOption, _report, campaigns_app, coupons_app
from cli.style import NONE, cents, display, moment, money, record, row, table

NameArgument = Annotated[str, typer.Argument(help="Campaign name.")]
ContextOption = Annotated[str, typer.Option(
    "--loan-context", help="key=value,... or JSON: channel, asset_party, funding_party, "
    "first_drawdown, first_drawdown_in_window, credit_granted_in_window, customer_type, "
    "credit_method, principal, annual_rate, term, method, start.")]


def _state_line(state) -> str:  # type: ignore[no-untyped-def]
    approvals = ", ".join(f"{what} by {who}" for what, who in (
        ("activity", state.activity_approved_by), ("budget", state.budget_approved_by)) if who)
    submitted = f" submitted by {state.submitted_by}" if state.submitted_by else ""
    return f"{state.campaign}: {state.state}{submitted}" + (
        f"; approved: {approvals}" if approvals else "")


def _change(ctx: typer.Context, name: str, operation: str, *args: object) -> None:
    from issuance import approval

    kequn = kequn_context(ctx)
    campaign = kequn.project.campaign(name)
    db = kequn.connect_serving()
    try:
        state = getattr(approval, operation)(db, campaign, kequn.settings.user, *args)
    finally:
        db.close()
    typer.echo(_state_line(state))


@campaigns_app.command("state")
def state(ctx: typer.Context, name: NameArgument) -> None:
    """The campaign's approval state, who submitted and approved it, and whether it issues
    now (only live, with the definition that was approved)."""
    from issuance.approval import needed, read_state, why_not_live

    kequn = kequn_context(ctx)
    campaign = kequn.project.campaign(name)
    db = kequn.connect_serving()
    try:
        current = read_state(db, campaign.name)
    finally:
        db.close()
    reason = why_not_live(current, campaign)
    display(record({
        "campaign": current.campaign, "state": current.state,
        "submitted by": current.submitted_by,
        "activity approved by": current.activity_approved_by,
        "budget approved by": current.budget_approved_by,
        "needs": f"{', '.join(needed(campaign))} approval; issues only when live",
        "issues": "yes" if reason is None else f"no (not_live): {reason}",
    }, title=f"campaign {current.campaign}"))


@campaigns_app.command("submit")
def submit(ctx: typer.Context, name: NameArgument) -> None:
    """draft -> pending_approval (you become the submitter)."""
    _change(ctx, name, "submit")


@campaigns_app.command("approve")
def approve(ctx: typer.Context, name: NameArgument,
            what: Annotated[str, typer.Argument(help="activity or budget.")]) -> None:
    """Approve the campaign's activity or budget (an approver other than the submitter);
    with every needed approval it is approved."""
    _change(ctx, name, "approve", what, kequn_context(ctx).roles)


@campaigns_app.command("reject")
def reject(ctx: typer.Context, name: NameArgument,
           reason: Annotated[str, typer.Option("--reason", help="Why.")]) -> None:
    """pending_approval -> draft (approvals cleared)."""
    _change(ctx, name, "reject", reason, kequn_context(ctx).roles)


@campaigns_app.command("launch")
def launch(ctx: typer.Context, name: NameArgument) -> None:
    """approved -> live: the campaign issues."""
    _change(ctx, name, "launch")


@campaigns_app.command("end")
def end(ctx: typer.Context, name: NameArgument) -> None:
    """live -> ended: no more issues."""
    _change(ctx, name, "end")


@campaigns_app.command("plan")
def plan(ctx: typer.Context, name: NameArgument,
         as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Forecast the campaign's cost before launch: eligible customers, stock, expected use,
    worst-case and expected cost."""
    from issuance.forecast import forecast

    kequn = kequn_context(ctx)
    campaign = kequn.project.campaign(name)
    db = kequn.connect_serving()
    try:
        result = forecast(db, campaign)
    finally:
        db.close()
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return
    display(record({
        "campaign": result.campaign, "eligible customers": result.eligible,
        "stock": result.stock, "issuable": result.issuable, "expected use": result.expected_use,
        "max reduction": money(result.max_reduction),
        "typical reduction": money(result.typical_reduction),
        "worst-case cost": money(result.worst_case_cost),
        "expected cost": money(result.expected_cost),
        "budget": money(result.budget) if result.budget is not None else "none",
        "reserved": money(result.reserved), "booked": money(result.booked),
    }, title=f"campaign {result.campaign} forecast (yuan)"))


@campaigns_app.command("ledger")
def ledger_(ctx: typer.Context, name: NameArgument) -> None:
    """Every ledger entry of the campaign (reserve, book, release, reversal), oldest first."""
    from issuance.ledger import entries

    kequn = kequn_context(ctx)
    campaign = kequn.project.campaign(name)
    db = kequn.connect_serving()
    try:
        rows = entries(db, campaign=campaign.name)
    finally:
        db.close()
    if not rows:
        typer.echo(f"no ledger entries for {campaign.name}")
        return
    out = table("entry", "at (UTC)", "coupon", "kind", "amount", "loan",
                title=f"campaign {campaign.name} ledger (yuan)", numeric=("entry", "amount"))
    for e in rows:
        row(out, str(e.entry_id), moment(e.at, "UTC"), e.coupon_id, e.kind, cents(e.cents),
            e.loan_id)
    display(out)


@coupons_app.command("void")
def void(ctx: typer.Context, coupon: Annotated[str, typer.Argument(help="Coupon id.")],
         reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")],
         key: KeyOption) -> None:
    """An operator voids an unused coupon (needs the 'operators' role)."""
    from kequn.errors import Location, ValidationError
    from serving.audit import require_user

    kequn = kequn_context(ctx)
    user = require_user(kequn.settings.user)
    roles = kequn.roles
    if not roles.may(user, "operators"):
        raise ValidationError(f"{user} may not void coupons", Location(),
                              hint=f"operators in {roles.path}: "
                              f"{', '.join(roles.who('operators')) or 'none'}")
    with kequn.issuer(with_campaigns=False) as issuer:
        _report(issuer.void(coupon, key, user=user, reason=reason))


@coupons_app.command("usable")
def usable(ctx: typer.Context,
           customer: Annotated[int, typer.Argument(help="Customer id.")],
           loan_context: ContextOption,
           as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The customer's coupons usable on this loan, each with its trial reduction, best first;
    and the best choice honouring stacking (one exclusive coupon, or the stackable ones
    together)."""
    from issuance.usable import usable_coupons

    context = parse_context(loan_context)
    with kequn_context(ctx).issuer() as issuer:
        result = usable_coupons(issuer, customer, context)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return
    out = table("coupon", "campaign", "template", "stacking", "usable", "reduction",
                title=f"coupons of customer {customer} on this loan (yuan)",
                numeric=("reduction",))
    for option in result.options:
        row(out, option.coupon_id, option.campaign, option.describe, option.stacking, "yes",
            money(option.reduction))
    for coupon_id, reason in result.refused:
        row(out, coupon_id, NONE, NONE, NONE, f"no: {reason}", NONE)
    if result.options or result.refused:
        display(out)
    if result.held:
        typer.echo(f"loan {context.loan_id} holds {' + '.join(result.held)} "
                   f"(reduction {money(result.held_reduction)})")
    if result.best:
        typer.echo(f"best: {' + '.join(result.best)} (reduction "
                   f"{money(result.best_reduction)}"
                   + (" with what the loan holds)" if result.held else ")"))
    else:
        typer.echo(f"customer {customer} has no coupon usable on this loan")


def audit(
    ctx: typer.Context,
    obj: Annotated[str | None, typer.Option("--object", help="e.g. campaign:NAME, "
                                            "coupon:ID, segment:NAME.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Only this user.")] = None,
    action: Annotated[str | None, typer.Option("--action", help="Only this action.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Latest N entries.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The audit log (who, what, when, before/after hash), oldest first."""
    from serving.audit import entries

    db = kequn_context(ctx).connect_serving()
    try:
        rows = entries(db, obj=obj, user=user, action=action, limit=limit)
    finally:
        db.close()
    if as_json:
        for e in rows:
            typer.echo(json.dumps(e.to_dict(), ensure_ascii=False))
        return
    if not rows:
        typer.echo("no audit entry matches")
        return
    out = table("entry", "at (UTC)", "user", "action", "object", "before", "after", "detail",
                title="audit log", numeric=("entry",))
    for e in rows:
        row(out, str(e.entry_id), moment(e.at, "UTC"), e.user, e.action, e.object,
            e.before_hash, e.after_hash, e.detail or NONE)
    display(out)


def register(app: typer.Typer) -> None:
    """Add ``audit`` (the campaign and coupon commands join their sub-apps on import)."""
    app.command("audit")(audit)
