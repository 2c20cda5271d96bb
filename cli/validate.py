"""``kequn validate`` (every definition of every kind, for CI) and ``kequn settings``."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import kequn_context
from cli.style import display, number, row, table
from kequn.errors import raise_collected
from kequn.settings import SETTINGS


def validate(
    ctx: typer.Context,
    warn_only: Annotated[bool, typer.Option(
        "--warn-only", help="Print the problems but exit 0.")] = False,
    portable: Annotated[bool, typer.Option(
        "--portable", help="Also report SQL outside the subset that runs the same on DuckDB "
        "and Spark, with the portable spelling.")] = False,
) -> None:
    """Check every definition (tags, segments, campaigns, rules): print each problem as
    file:line:col and exit 1 if there is any."""
    project = kequn_context(ctx).project
    problems = project.problems()
    if not problems:
        from segments.catalog import warehouse_problems

        problems = warehouse_problems(kequn_context(ctx).warehouse.path,
                                      project.segments.values(), project.tags)
    if portable:
        from plan.portable import portable_problems

        problems = [*problems, *portable_problems(project)]
    if problems and not warn_only:
        raise_collected(problems)
    for problem in problems:
        typer.echo(problem.render(), err=True)
    counts = ", ".join(f"{number(len(defined))} {kind}s" for kind, defined in (
        ("tag", project.tags), ("segment", project.segments), ("campaign", project.campaigns),
        ("rule", project.rules)))
    broken = len(project.broken)
    typer.echo(f"{counts} OK" + (f"; {number(broken)} broken" if broken else "")
               + ("; portable to Spark" if portable and not problems else ""))


def settings(ctx: typer.Context) -> None:
    """Every setting: its value for this run, its environment variable and its meaning."""
    values = kequn_context(ctx).settings.as_dict()
    out = table("setting", "value", "variable", "meaning", title="settings")
    for setting in SETTINGS:
        row(out, setting.field, values[setting.field], setting.env, setting.help)
    display(out)


def register(app: typer.Typer) -> None:
    """Add the ``validate`` and ``settings`` commands."""
    app.command("validate")(validate)
    app.command("settings")(settings)
