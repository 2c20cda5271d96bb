"""``kequn rules ...`` and ``kequn touch ...``: thin commands over :mod:`rules`.

``rules list|show|validate|preview|run|orders|history|uplift`` and
``touch dispatch|opt-out|outbox``. Engines are imported inside each command.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from cli.common import kequn_context, parse_day
from cli.style import NONE, display, moment, number, record, row, table
from kequn.errors import raise_collected

rules_app = typer.Typer(help="Marketing rules: conditions -> actions, orders, uplift.",
                        no_args_is_help=True)
touch_app = typer.Typer(help="Touch messages: dispatch the outbox, opt-outs.",
                        no_args_is_help=True)

AsOf = Annotated[str, typer.Option("--as-of", help="Business day YYYY-MM-DD.")]
RuleName = Annotated[str, typer.Argument(help="Rule name.")]


@rules_app.command("validate")
def validate(
    ctx: typer.Context,
    file: Annotated[Path | None, typer.Argument(help="One rule file (default: every rule).")
                    ] = None,
) -> None:
    """Check every rule file (or one) with the other definitions; print every problem as
    file:line:col and exit 1."""
    kequn = kequn_context(ctx)
    if file is not None:
        project = kequn.project_with([file])
        raise_collected(project.problems("rule", paths=[file]))
        for broken in project.broken_of("rule").values():
            if broken.path.resolve() == file.resolve():
                raise typer.Exit(_waiting(broken.reason))
    else:
        project = kequn.project
        project.raise_problems("rule")
    typer.echo(f"{number(len(project.rules))} rule(s) OK")


def _waiting(reason: str) -> int:
    typer.echo(reason, err=True)
    return 1


@rules_app.command("list")
def list_rules(ctx: typer.Context) -> None:
    """Every rule: trigger, priority, group, holdout; broken ones with their first error."""
    kequn = kequn_context(ctx)
    out = table("rule", "owner", "trigger", "priority", "group", "holdout", "actions",
                title="rules", numeric=("priority", "holdout"))
    for rule in kequn.project.rules.values():
        row(out, rule.name, rule.owner, rule.trigger.describe(), rule.priority,
            rule.exclusion_group, f"{rule.holdout:.0%}",
            " && ".join(a.describe() for a in rule.then)
            + (" : " + (" && ".join(a.describe() for a in rule.otherwise) or "nothing")
               if rule.otherwise is not None else ""))
    for broken in kequn.project.broken_of("rule").values():
        row(out, broken.name, NONE, "BROKEN", NONE, NONE, NONE, broken.reason.splitlines()[0])
    display(out)


@rules_app.command("show")
def show(ctx: typer.Context, name: RuleName) -> None:
    """A rule's settings, actions and compiled SQL."""
    kequn = kequn_context(ctx)
    rule = kequn.project.rule(name)
    compiled = kequn.plan.rules[name]
    quiet = (f"{rule.quiet_hours[0][0]:02d}:{rule.quiet_hours[0][1]:02d}-"
             f"{rule.quiet_hours[1][0]:02d}:{rule.quiet_hours[1][1]:02d}"
             if rule.quiet_hours else "off")
    fields: list[tuple[str, object]] = [
        ("name", rule.name), ("file", rule.path), ("version", rule.version_hash),
        ("description", rule.description),
        ("owner", rule.owner), ("trigger", rule.trigger.describe()),
        ("condition", rule.condition.sql("duckdb")),
        ("then", " && ".join(a.describe() for a in rule.then) or "nothing"),
        ("else", " && ".join(a.describe() for a in rule.otherwise) or "nothing"
         if rule.otherwise is not None else "(binary form: no order)"),
        ("priority", rule.priority), ("exclusion group", rule.exclusion_group or "none"),
        ("first N", rule.first_n or "no limit"),
        ("caps", f"{number(rule.max_touches_per_day)}/day, "
                 f"{number(rule.max_touches_per_week)}/week"),
        ("quiet hours", quiet), ("holdout", f"{rule.holdout:.1%}"),
    ]
    fields += [(f"template {t.name}", t.text) for t in rule.templates.values()]
    display(record(fields, title=f"rule {rule.name}"))
    typer.echo(compiled.sql())


@rules_app.command("preview")
def preview(ctx: typer.Context, name: RuleName, as_of: AsOf,
            sample: Annotated[int, typer.Option(min=0, help="Messages to show.")] = 5) -> None:
    """How many customers would get each action and how many are held out; writes nothing."""
    from rules.run import preview_rule
    from serving.db import connect

    kequn = kequn_context(ctx)
    day = parse_day(as_of)
    kequn.project.rule(name)
    compiled = kequn.plan.rules[name]
    con = kequn.connect_warehouse(read_only=True)
    db = connect(kequn.settings.serving_url, migrate=False)
    try:
        result = preview_rule(con, db, compiled, day,
                              group=list(kequn.plan.rules.values()), sample=sample)
    finally:
        db.close()
        con.close()
    typer.echo(f"rule {name}, business day {day}: {number(result.candidates)} event(s), "
               f"{number(result.already_ordered)} already ordered (nothing written)")
    decisions = table("decision", "customers", title="by decision", numeric=("customers",))
    for decision, n in result.decisions.items():
        row(decisions, decision, n)
    actions = table("action", "customers", title="by action", numeric=("customers",))
    for action, n in result.actions.items():
        row(actions, action, n)
    sample = table("channel", "customer", "send at (UTC)", "text", title="sample messages",
                   numeric=("customer",))
    for message in result.sample:
        row(sample, message["channel"], str(message["customer_id"]),
            moment(message["send_at"], "UTC") if isinstance(message["send_at"], datetime)
            else message["send_at"], message["text"])
    display(decisions, actions, *([sample] if result.sample else []))


@rules_app.command("run")
def run(ctx: typer.Context, name: RuleName, as_of: AsOf) -> None:
    """Evaluate the rule for the day and write its orders (as the rules/<name> asset does;
    a re-run adds nothing)."""
    from rules.run import run_rule

    kequn = kequn_context(ctx)
    day = parse_day(as_of)
    kequn.project.rule(name)
    con = kequn.connect_warehouse(read_only=True)
    try:
        with kequn.issuer() as issuer:
            report = run_rule(con, issuer.db, issuer, kequn.plan.rules[name], day,
                              group=list(kequn.plan.rules.values()))
    finally:
        con.close()
    display(record({
        "rule": report.rule, "business day": report.day, "version": report.version,
        "candidates": report.candidates, "already ordered": report.already_ordered,
        "new orders": dict(sorted(report.decisions.items())) or "none",
        "messages": f"{number(report.messages)} ({number(report.suppressed)} suppressed)",
        "coupons": dict(sorted(report.coupons.items())) or "none",
    }, title=f"rule {report.rule} run"))


@rules_app.command("orders")
def orders(ctx: typer.Context, name: RuleName, as_of: AsOf,
           limit: Annotated[int, typer.Option(min=1, help="Orders to list.")] = 20) -> None:
    """The rule's orders for the day: counts by decision, then the first orders."""
    from rules.history import decision_counts
    from rules.history import orders as read_orders

    kequn = kequn_context(ctx)
    day = parse_day(as_of)
    db = kequn.connect_serving()
    try:
        counts = decision_counts(db, name, day)
        listed = read_orders(db, name, day, limit=limit)
    finally:
        db.close()
    out = table("customer", "event", "decision", "version", "actions",
                title=f"rule {name} orders, business day {day}: "
                + (", ".join(f"{k} {number(v)}" for k, v in counts.items()) or "none"))
    for order in listed:
        actions = "; ".join(
            f"{a['action']} {a.get('campaign') or a.get('channel')}"
            + (f" ({a['result']})" if "result" in a else "") for a in order.actions)
        row(out, str(order.customer_id), order.event_key, order.decision,
            order.version_hash, actions)
    display(out)


@rules_app.command("history")
def history(ctx: typer.Context, name: RuleName) -> None:
    """Every version of the rule that decided something, with diffs."""
    from rules.history import versions

    kequn = kequn_context(ctx)
    db = kequn.connect_serving()
    try:
        found = versions(db, name)
    finally:
        db.close()
    if not found:
        typer.echo(f"rule {name} has no recorded version (it has not run yet)")
        return
    out = table("version", "first used (UTC)", "orders", title=f"rule {name} versions",
                numeric=("orders",))
    for version in found:
        row(out, version.version_hash, moment(version.first_used_at, "UTC"), version.orders)
    display(out)
    for version in found:
        if version.diff:
            typer.echo(f"\nchanges in version {version.version_hash}:\n{version.diff}")


@rules_app.command("uplift")
def uplift(
    ctx: typer.Context, name: RuleName,
    first: Annotated[str, typer.Option("--from", help="First order day.")],
    last: Annotated[str, typer.Option("--to", help="Last order day.")],
    outcome: Annotated[str, typer.Option(help="Boolean outcome tag.")] = "drawn",
    horizon: Annotated[int, typer.Option(min=0, help="Days after the order.")] = 14,
) -> None:
    """Acted against control on an outcome tag: sizes, rates, difference, 95% interval."""
    from app.engines import tags_reader
    from rules.uplift import uplift as measure

    kequn = kequn_context(ctx)
    db = kequn.connect_serving()
    try:
        with tags_reader(kequn) as con:  # engine spark: every wide day in the lake
            result = measure(db, con, name, parse_day(first, "--from"),
                             parse_day(last, "--to"), outcome, horizon)
    finally:
        db.close()

    def pct(x: float) -> str:
        return "n/a" if math.isnan(x) else f"{x:.2%}"

    low, high = result.interval
    out = table("group", "customers", "with outcome", "rate",
                title=f"rule {name}: outcome '{outcome}' {horizon} day(s) after the order",
                numeric=("customers", "with outcome", "rate"))
    row(out, "acted", result.acted, result.acted_hits, pct(result.acted_rate))
    row(out, "control", result.control, result.control_hits, pct(result.control_rate))
    display(out)
    typer.echo(f"difference {pct(result.difference)}, 95% interval [{pct(low)}, {pct(high)}]")


@touch_app.command("dispatch")
def dispatch(
    ctx: typer.Context,
    webhook: Annotated[str, typer.Option(help="POST messages to this URL instead of the "
                                         "file sink.")] = "",
    sink: Annotated[Path | None, typer.Option(help="File sink folder (default "
                                              "<data_dir>/touch).")] = None,
) -> None:
    """Deliver every due message once (as the touch_dispatch job does)."""
    from rules.channels import FileSink, Webhook, adapters_for
    from rules.dispatch import dispatch as run_dispatch

    kequn = kequn_context(ctx)
    default = Webhook(webhook) if webhook else FileSink(
        sink or kequn.settings.data_dir / "touch")
    db = kequn.connect_serving()
    try:
        report = run_dispatch(db, adapters_for(default))
    finally:
        db.close()
    for error in report.errors[:10]:
        typer.echo(f"failed: {error}", err=True)
    typer.echo(f"claimed {number(report.claimed)}: sent {number(report.sent)}, retry later "
               f"{number(report.retried)}, failed {number(report.failed)}; suppressed "
               f"{number(report.suppressed)} (opted out)")


@touch_app.command("opt-out")
def opt_out(ctx: typer.Context,
            customer_id: Annotated[int, typer.Argument(help="Customer id.")],
            channel: Annotated[str, typer.Argument(
                help="sms, wechat, app_message, app_slot, telemarketing or push.")],
            ) -> None:
    """Stop messages on a channel for a customer (pending ones are suppressed now)."""
    from project.rule import CHANNELS
    from rules.dispatch import opt_out as record

    if channel not in CHANNELS:
        raise typer.BadParameter(f"{channel!r} is not one of {', '.join(CHANNELS)}",
                                 param_hint="CHANNEL")
    kequn = kequn_context(ctx)
    db = kequn.connect_serving()
    try:
        record(db, customer_id, channel)
    finally:
        db.close()
    typer.echo(f"customer {customer_id} opted out of {channel}")


@touch_app.command("outbox")
def outbox(ctx: typer.Context,
           rule: Annotated[str | None, typer.Option(help="Only this rule.")] = None) -> None:
    """Messages by channel and state."""
    from rules.dispatch import outbox_counts

    kequn = kequn_context(ctx)
    db = kequn.connect_serving()
    try:
        counts = outbox_counts(db, rule)
    finally:
        db.close()
    if not counts:
        typer.echo("the outbox is empty")
        return
    out = table("channel", "state", "messages", title="touch outbox" + (
        f" of rule {rule}" if rule else ""), numeric=("messages",))
    for (channel, state), n in counts.items():
        row(out, channel, state, n)
    display(out)


def register(app: typer.Typer) -> None:
    """Add the `rules` and `touch` command groups."""
    app.add_typer(rules_app, name="rules")
    app.add_typer(touch_app, name="touch")
