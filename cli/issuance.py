"""``kequn campaigns ...`` and ``kequn coupons ...``: thin commands over :mod:`issuance`.

A refused request (stock exhausted, lease expired...) prints the reason on stderr and
exits 1; a reused idempotency key with a different request is an error (exit 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cli.common import kequn_context, parse_context
from cli.style import NONE, cents, display, moment, money, number, record, row, table
from issuance.outcome import Outcome
from kequn.errors import raise_collected
from project.loader import load_project

campaigns_app = typer.Typer(help="Coupon campaigns (活动): list, show, validate, counters.",
                            no_args_is_help=True)
coupons_app = typer.Typer(help="Coupons: issue, occupy, confirm, reverse, expire, list.",
                          no_args_is_help=True)

KeyOption = Annotated[str, typer.Option("--key", help="Idempotency key of this request.")]
LoanOption = Annotated[str, typer.Option("--loan", help="Loan application id.")]


def _report(outcome: Outcome) -> None:
    """Print the outcome; a refusal goes to stderr and exits 1."""
    if outcome.ok:
        typer.echo(outcome.message)
        return
    typer.echo(outcome.message, err=True)
    raise typer.Exit(1)


# -- campaigns ----------------------------------------------------------------------------
@campaigns_app.command("validate")
def validate(
    ctx: typer.Context,
    folder: Annotated[Path | None, typer.Argument(
        help="Campaigns folder or file (default: <project>/campaigns).")] = None,
) -> None:
    """Load and check every campaign file, and each target segment (exists, synced, shared
    with the campaign's owner); print every problem as file:line:col and exit 1."""
    kequn = kequn_context(ctx)
    if folder is not None and folder.is_file():
        project = kequn.project_with([folder])
        raise_collected(project.problems("campaign", paths=[folder]))
    else:
        project = kequn.project if folder is None else load_project(
            kequn.settings.project_dir, folders={"campaign": folder})
        project.raise_problems("campaign")
    typer.echo(f"{number(len(project.campaigns))} campaign(s) OK")


@campaigns_app.command("list")
def list_campaigns(ctx: typer.Context) -> None:
    """One line per campaign: type, target segment, coupon, window, limits, stacking."""
    out = table("name", "type", "segment", "coupon", "window (Asia/Shanghai, end excluded)",
                "stock", "daily", "per customer", "stacking", "on failed drawdown",
                title="campaigns", numeric=("stock", "daily", "per customer"))
    for c in kequn_context(ctx).project.campaigns.values():
        row(out, c.name, c.type, c.target_segment, c.template.describe(),
            f"{moment(c.window_start)} .. {moment(c.window_end)}", c.total_stock,
            c.daily_limit, c.per_customer_limit, c.stacking, c.on_failed_drawdown)
    display(out)


@campaigns_app.command("show")
def show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Campaign name.")]
         ) -> None:
    """Every field of one campaign."""
    c = kequn_context(ctx).project.campaign(name)
    display(record({
        "name": c.name, "title": c.title or NONE, "type": c.type, "owner": c.owner,
        "target_segment": c.target_segment, "channels": c.channels,
        "window": f"{moment(c.window_start)} .. {moment(c.window_end)} "
                  "(Asia/Shanghai, end excluded)",
        "coupon": c.template.describe(), "validity": c.validity.describe(),
        "total_stock": c.total_stock, "daily_limit": c.daily_limit or "none",
        "per_customer_limit": c.per_customer_limit, "stacking": c.stacking,
        "on_failed_drawdown": c.on_failed_drawdown,
        "lease_seconds": c.lease_seconds, "rules": c.rules or NONE, "file": c.path,
        "definition_hash": c.definition_hash, "scope": c.scope.describe(),
        "loan_bounds": f"principal <= {money(c.bounds.max_principal)}, "
                       f"term <= {number(c.bounds.max_term)}, rate <= {c.bounds.max_rate}",
        "max_reduction": f"{money(c.max_reduction)} per coupon (what issuing reserves)",
        "budget": money(c.budget) if c.budget is not None
        else "none (needs only the activity approval)",
    }, title=f"campaign {c.name}"))


@campaigns_app.command("counters")
def counters(ctx: typer.Context,
             name: Annotated[str, typer.Argument(help="Campaign name.")]) -> None:
    """Issued / stock, issued on the current business day / daily limit, coupons by state."""
    with kequn_context(ctx).issuer() as issuer:
        c = issuer.counters(name)
    limit = number(c.daily_limit) if c.daily_limit else "no daily limit"
    display(record({
        "campaign": c.campaign,
        "issued": f"{number(c.issued)} / {number(c.total_stock)} "
                  f"(remaining {number(c.remaining)})",
        f"business day {c.day}": f"{number(c.day_issued)} / {limit} (Asia/Shanghai, counts "
                                 "toward the daily limit)",
        "per customer": number(c.per_customer_limit),
        "by state": c.by_status or "none",
        "budget": f"{money(c.budget) if c.budget is not None else 'none'}: reserved "
                  f"{cents(c.reserved_cents)}, booked {cents(c.booked_cents)}",
        "ledger": ", ".join(f"{kind} {cents(n)}" for kind, n in c.ledger.items()) or "none",
    }, title=f"campaign {c.campaign} counters"))


# -- coupons ------------------------------------------------------------------------------
@coupons_app.command("issue")
def issue(
    ctx: typer.Context,
    campaign: Annotated[str, typer.Argument(help="Campaign name.")],
    customer: Annotated[int, typer.Argument(help="Customer id.")],
    key: KeyOption,
) -> None:
    """Issue one coupon to a customer, or print why not (exit 1)."""
    with kequn_context(ctx).issuer() as issuer:
        _report(issuer.issue(campaign, customer, key))


@coupons_app.command("occupy")
def occupy(
    ctx: typer.Context,
    coupon: Annotated[str, typer.Argument(help="Coupon id.")],
    loan: LoanOption,
    key: KeyOption,
    lease_seconds: Annotated[int | None, typer.Option(
        "--lease-seconds", min=1, help="Lease length (default: the campaign's).")] = None,
    channel: Annotated[str | None, typer.Option(
        "--channel", help="Channel of the loan application (checked against the scope).")]
    = None,
    loan_context: Annotated[str | None, typer.Option(
        "--loan-context", help="The loan's context, key=value,... or JSON: channel, "
        "asset_party, funding_party, first_drawdown, first_drawdown_in_window, "
        "credit_granted_in_window, customer_type, credit_method, principal, annual_rate, "
        "term, method, start (checked against the campaign's scope and bounds).")] = None,
) -> None:
    """Hold a coupon for a loan application under a lease."""
    context = parse_context(loan_context) if loan_context is not None else None
    with kequn_context(ctx).issuer(with_campaigns=context is not None) as issuer:
        _report(issuer.occupy(coupon, loan, key, lease_seconds=lease_seconds, channel=channel,
                              context=context))


@coupons_app.command("confirm")
def confirm(ctx: typer.Context, coupon: Annotated[str, typer.Argument(help="Coupon id.")],
            loan: LoanOption, key: KeyOption) -> None:
    """The loan was disbursed: the coupon is used (fails once the lease has ended)."""
    with kequn_context(ctx).issuer(with_campaigns=False) as issuer:
        _report(issuer.confirm(coupon, loan, key))


@coupons_app.command("reverse")
def reverse(ctx: typer.Context, coupon: Annotated[str, typer.Argument(help="Coupon id.")],
            loan: LoanOption, key: KeyOption) -> None:
    """The drawdown failed: void (or restore) the coupon; after confirm its booked
    reduction is reversed in the ledger; before any occupy, an empty rollback that makes
    a late occupy fail."""
    with kequn_context(ctx).issuer() as issuer:  # a restored coupon may reserve budget
        _report(issuer.reverse(coupon, loan, key))


@coupons_app.command("expire")
def expire(ctx: typer.Context) -> None:
    """Release ended leases and expire coupons past validity (what the schedule runs)."""
    with kequn_context(ctx).issuer(with_campaigns=False) as issuer:
        report = issuer.expire()
    typer.echo(f"released {number(report.released)} lease(s), "
               f"expired {number(report.expired)} coupon(s)")


@coupons_app.command("list")
def list_coupons(
    ctx: typer.Context,
    customer: Annotated[int, typer.Option("--customer", help="Customer id.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
    = False,
) -> None:
    """A customer's coupons with their state as of now."""
    with kequn_context(ctx).issuer(with_campaigns=False) as issuer:
        now = issuer.clock.now()
        coupons = issuer.coupons_of(customer)
    if as_json:
        for coupon in coupons:
            typer.echo(json.dumps(coupon.to_dict(now), ensure_ascii=False))
        return
    if not coupons:
        typer.echo(f"customer {customer} has no coupons")
        return
    out = table("coupon", "campaign", "state", "template", "valid from (Asia/Shanghai)",
                "valid until (Asia/Shanghai)", "loan",
                title=f"coupons of customer {customer} as of {moment(now)} (Asia/Shanghai)")
    for c in coupons:
        row(out, c.coupon_id, c.campaign, c.effective_status(now),
            f"{c.template_kind}={c.template_value}", moment(c.valid_from),
            moment(c.valid_until), c.loan_id)
    display(out)


@coupons_app.command("history")
def history(ctx: typer.Context,
            coupon: Annotated[str, typer.Argument(help="Coupon id.")]) -> None:
    """Every transition of one coupon, oldest first."""
    with kequn_context(ctx).issuer(with_campaigns=False) as issuer:
        rows = issuer.history(coupon)
    if not rows:
        typer.echo(f"no coupon {coupon}", err=True)
        raise typer.Exit(1)
    out = table("seq", "at (Asia/Shanghai)", "from", "to", "reason", "loan",
                title=f"coupon {coupon}", numeric=("seq",))
    for seq, source, target, at, loan, reason in rows:
        row(out, seq, moment(at), source, target, reason or NONE, loan)
    display(out)


def register(app: typer.Typer) -> None:
    """Add the ``campaigns`` and ``coupons`` sub-apps."""
    app.add_typer(campaigns_app, name="campaigns")
    app.add_typer(coupons_app, name="coupons")
