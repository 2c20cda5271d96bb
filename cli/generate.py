"""``kequn generate``: write the demo credit warehouse (thin over :mod:`kequn.generate`)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.common import kequn_context, parse_day
from cli.style import console as styled_console
from cli.style import row, table


def generate(
    ctx: typer.Context,
    customers: Annotated[
        int,
        typer.Option("--customers", "-n", min=1, help="How many customers to generate."),
    ] = 100_000,
    seed: Annotated[int, typer.Option("--seed", "-s", help="Random seed (same seed, same data).")]
    = 7,
    end_date: Annotated[
        str | None,
        typer.Option(
            "--end-date",
            help="Last business day with events, YYYY-MM-DD (default: yesterday, Asia/Shanghai).",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    lake: Annotated[bool, typer.Option(
        "--lake", help="Also write the raw tables to the lake as Parquet (engine spark).")]
    = False,
) -> None:
    """Generate the demo warehouse: raw.customers, credit_applications, loans, installments.

    Replaces the four raw tables of the warehouse (global --warehouse) in one
    transaction. Two years of history end with --end-date.
    """
    # numpy and pyarrow load only for the command that generates
    from generate import generate_warehouse

    end = parse_day(end_date, "--end-date") if end_date else None
    settings = kequn_context(ctx).settings
    stats = generate_warehouse(
        settings.warehouse, customers=customers, seed=seed, end_date=end, progress=not quiet,
        wait_s=settings.warehouse_wait_s,
    )
    console = styled_console()
    out = table("table", "rows", numeric=("rows",),
                title=f"{stats.path}: seed {stats.seed}, business days {stats.start_date} .. "
                f"{stats.end_date}")
    for name, count in stats.rows.items():
        row(out, f"raw.{name}", count)
    console.print(out)
    console.print(f"time {stats.seconds:.1f} s", markup=False)
    if lake:
        from app.engines import export_lake

        export_lake(kequn_context(ctx))
        console.print(f"raw tables written to {settings.lake_dir / 'raw'}")


def register(app: typer.Typer) -> None:
    """Add ``kequn generate`` to the root command."""
    app.command("generate")(generate)
