"""``kequn lake export`` and ``kequn parity``: the lake and the proof that Spark agrees.

Thin over :mod:`app.engines` and :mod:`app.parity`; Spark (pyspark, Java) is loaded only
by ``parity``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import kequn_context, parse_day
from cli.style import display, number, row, table
from kequn.errors import ExecutionError, Location

lake_app = typer.Typer(help="The lake (engine spark): raw tables as Parquet.",
                       no_args_is_help=True)


@lake_app.command("export")
def export(ctx: typer.Context) -> None:
    """Write the warehouse's raw.* tables to <lake>/raw/<table>/ as Parquet (each replaced
    whole), for the Spark engine."""
    from app.engines import export_lake, lake_of

    kequn = kequn_context(ctx)
    rows = export_lake(kequn)
    out = table("table", "rows", "written to", title="lake export", numeric=("rows",))
    for name, count in rows.items():
        row(out, f"raw.{name}", count, lake_of(kequn).raw(name))
    display(out)


def parity(
    ctx: typer.Context,
    as_of: Annotated[list[str], typer.Option(
        "--as-of", help="Business day to compare (repeat for several).")],
) -> None:
    """Build every tag and segment on DuckDB and on Spark for the given days and compare them
    row for row (values and declared types); print a verdict per definition, exit 1 if any
    differs."""
    from app.parity import run_parity

    kequn = kequn_context(ctx)
    days = [parse_day(text) for text in as_of]
    verdicts = run_parity(kequn, days)
    out = table("business day", "kind", "name", "rows", "verdict", title="DuckDB against Spark",
                numeric=("rows",))
    for verdict in verdicts:
        row(out, verdict.day, verdict.kind, verdict.name, verdict.rows,
            "same" if verdict.same else verdict.render().partition(" DIFFERENT: ")[2])
    display(out)
    different = [v for v in verdicts if not v.same]
    typer.echo(f"{number(len(verdicts) - len(different))} of {number(len(verdicts))} the same "
               "on DuckDB and Spark")
    if different:
        raise ExecutionError(f"{len(different)} definition(s) differ between DuckDB and Spark: "
                             + ", ".join(sorted({v.name for v in different})),
                             Location(kequn.settings.project_dir),
                             hint="kequn validate --portable shows the constructs to change")


def register(app: typer.Typer) -> None:
    """Add ``kequn lake`` and ``kequn parity``."""
    app.add_typer(lake_app, name="lake")
    app.command("parity")(parity)
