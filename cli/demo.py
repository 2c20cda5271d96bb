"""`kequn demo`: generate a demo warehouse, run the whole graph through Dagster, summarise."""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Annotated

import typer
from rich.console import Console

from app.context import KequnContext
from cli.common import ends_with_command, kequn_context, parse_day
from kequn.collector import collection_paused


def demo(
    ctx: typer.Context,
    customers: Annotated[int, typer.Option(min=1000, help="Customers to generate.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Generator seed (same seed, same warehouse).")] = 7,
    end_date: Annotated[
        str | None, typer.Option("--end-date", help="Last business day (default: yesterday).")
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=31, help="Days to build, ending at the "
                                      "last one (2+ shows day-over-day changes).")] = 2,
) -> None:
    """Generate demo data, materialise every asset for the latest days and print a summary.

    The demo starts from nothing: it replaces the warehouse file and a local SQLite
    serving database (a PostgreSQL one is left alone).
    """
    # Dagster takes about a second to import: only the commands that run the graph pay it,
    # with the garbage collector paused meanwhile (kequn.collector)
    with collection_paused(freeze=ends_with_command()):
        from app.demo_state import clear_demo_state
        from cli.summary import print_summary
        from dagster_project.runner import generate_demo_warehouse, materialize_days

    kequn = kequn_context(ctx)
    settings = kequn.settings
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # piped or captured: keep tag names whole
    started = time.perf_counter()
    for path in clear_demo_state(settings):
        console.print(f"    fresh start: removed {path}")
    console.print(f"[bold]1/3[/] generating {customers:,} customers into {settings.warehouse}")
    rows, last = generate_demo_warehouse(
        customers=customers, seed=seed,
        end_date=parse_day(end_date, "--end-date") if end_date else None,
        kequn=kequn,
    )
    console.print("    " + ", ".join(f"raw.{t}: {n:,}" for t, n in sorted(rows.items())))
    from app.economics_demo import approve_campaigns

    for line in approve_campaigns(kequn):  # only a live campaign issues
        console.print(f"    {line}")
    window = [last - timedelta(days=n) for n in range(days - 1, -1, -1)]
    kequn = record_first_day(kequn, window[0])
    console.print(f"[bold]2/3[/] materialising {len(window)} day(s) through Dagster: "
                  f"{window[0]} .. {window[-1]}")
    for run in materialize_days(window, kequn=kequn):
        console.print(f"    {run.day}: {len(run.materialized)} assets (run {run.run_id[:8]})")
    console.print(f"[bold]3/3[/] summary as of {last} "
                  f"(total {time.perf_counter() - started:.1f} s)")
    print_summary(kequn, last, console)
    from app.economics_demo import economics_demo

    console.print("\n[bold]Coupon economics[/] (approval, trial, ledger)")
    for line in economics_demo(kequn, last):
        console.print(f"    {line}")
    console.print("\nOpen the Dagster UI with [bold]make ui[/] (http://127.0.0.1:3000).")


def record_first_day(kequn: KequnContext, first: date) -> KequnContext:
    """Partitions start at the demo's first built day: recorded under the data folder (the
    UI reads it from there) and in effect for the rest of this run."""
    from kequn.settings import FIRST_DAY_FILE

    settings = kequn.settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / FIRST_DAY_FILE).write_text(f"{first.isoformat()}\n")
    return KequnContext(settings.with_(first_day=first))


def register(app: typer.Typer) -> None:
    """Add the `demo` command."""
    app.command("demo")(demo)
