"""`kequn materialize`: run the daily asset graph in-process, the same code Dagster runs."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import ends_with_command, kequn_context, parse_day
from cli.style import display, row, table
from kequn.collector import collection_paused


def materialize(
    ctx: typer.Context,
    as_of: Annotated[str | None, typer.Option("--as-of", help="One business day (YYYY-MM-DD).")]
    = None,
    first: Annotated[str | None, typer.Option("--from", help="First day of a range.")] = None,
    last: Annotated[str | None, typer.Option("--to", help="Last day of a range.")] = None,
    select: Annotated[
        str | None,
        typer.Option("--select", help="Dagster asset selection, e.g. 'key:tags/drawn' or "
                     "'key:segments/wake_up+'. Default: every daily asset."),
    ] = None,
) -> None:
    """Materialise tags, segments, syncs and issuance for a day or a range of days."""
    # Dagster takes about a second to import: only the commands that run the graph pay it,
    # with the garbage collector paused meanwhile (kequn.collector)
    with collection_paused(freeze=ends_with_command()):
        from dagster_project.runner import dagster_instance, days_between, materialize_days

        if as_of and (first or last):
            raise typer.BadParameter("give either --as-of or --from/--to",
                                     param_hint="--as-of")
        if as_of:
            days = [parse_day(as_of)]
        elif first and last:
            days = days_between(parse_day(first, "--from"), parse_day(last, "--to"))
        else:
            raise typer.BadParameter("give --as-of D, or --from D --to D",
                                     param_hint="--as-of")
        kequn = kequn_context(ctx)
        instance = dagster_instance(kequn.settings)
    with instance:
        runs = materialize_days(days, select=select, kequn=kequn, instance=instance)
    out = table("business day", "run", "assets materialised", "failed checks",
                title="materialised", numeric=("assets materialised",))
    for run in runs:
        row(out, run.day, run.run_id[:8], len(run.materialized), run.checks_failed)
    display(out)


def register(app: typer.Typer) -> None:
    """Add the `materialize` command."""
    app.command("materialize")(materialize)
