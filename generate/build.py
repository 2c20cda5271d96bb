"""Writing a demo warehouse: simulate blocks of customers, insert them, swap atomically.

All four ``raw.*`` tables are dropped, recreated and filled inside one DuckDB
transaction: readers see either the previous warehouse or the complete new one,
and a failure leaves the previous tables untouched.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from generate.arrow import IdOffsets, block_tables
from generate.schema import TABLES, create_table_sql, drop_table_sql
from generate.simulate import Block, simulate_block
from kequn.days import BUSINESS_TIMEZONE
from warehouse.db import DEFAULT_WAIT_S, connect, transaction

HISTORY_DAYS = 731
"""Days of history ending with ``end_date`` (two years, so point-in-time matters)."""
BLOCK_CUSTOMERS = 500_000
"""Customers simulated and inserted at a time; fixed, so output depends only on the seed."""
_STAGE = "kequn_generate_block"

_INSERT_SQL = {
    "customers": (
        "INSERT INTO raw.customers SELECT customer_id, sha256(CAST(phone_number AS VARCHAR)), "
        "registered_at, channel, customer_type, city FROM kequn_generate_block"
    ),
    **{
        name: f"INSERT INTO raw.{name} SELECT * FROM kequn_generate_block"
        for name in ("credit_applications", "loans", "installments")
    },
}


@dataclass(frozen=True)
class GenerateStats:
    """What :func:`generate_warehouse` wrote."""

    path: Path
    customers: int
    seed: int
    start_date: date
    """First day of the history window."""
    end_date: date
    """Last day with events: nothing happens at or after ``end_date + 1 day``."""
    rows: dict[str, int] = field(default_factory=dict)
    """Rows written per table name (``customers``, ``credit_applications``, ...)."""
    seconds: float = 0.0


def default_end_date(now: datetime | None = None) -> date:
    """Yesterday in Asia/Shanghai (the latest complete business day)."""
    now = now or datetime.now(ZoneInfo(BUSINESS_TIMEZONE))
    local = now.astimezone(ZoneInfo(BUSINESS_TIMEZONE)) if now.tzinfo else now
    return local.date() - timedelta(days=1)


def _block_rng(seed: int, block_no: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, block_no]))


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator:
    if not enabled:
        yield lambda advance: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]generating customers"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("customers", total=total)
        yield lambda advance: bar.advance(task, advance)


def generate_warehouse(
    path: Path | str,
    customers: int,
    seed: int,
    end_date: date | None = None,
    progress: bool = False,
    wait_s: float = DEFAULT_WAIT_S,
) -> GenerateStats:
    """Write a deterministic demo credit warehouse (architecture §3) into the DuckDB file ``path``.

    Replaces ``raw.customers``, ``raw.credit_applications``, ``raw.loans`` and
    ``raw.installments`` in one transaction. The same ``customers``, ``seed`` and
    ``end_date`` give identical table contents. Events span :data:`HISTORY_DAYS` days
    ending with ``end_date`` (default: yesterday in Asia/Shanghai); every timestamp is
    before ``end_date + 1 day``. Raises :class:`~kequn.errors.ExecutionError` naming
    the file when it cannot be opened for writing (another process holding it longer than
    ``wait_s`` seconds).
    """
    if customers < 1:
        raise ValueError(f"customers must be at least 1, got {customers}")
    started = time.perf_counter()
    end_date = end_date or default_end_date()
    start_date = end_date - timedelta(days=HISTORY_DAYS - 1)
    start_day = np.datetime64(start_date.isoformat(), "D")
    epoch_seconds = int(start_day.astype("datetime64[s]").astype(np.int64))
    rows = dict.fromkeys(TABLES, 0)
    offsets = IdOffsets()
    con = connect(path, wait_s=wait_s)
    try:
        con.execute("SET enable_progress_bar = false")  # ours is the rich one
        with transaction(con), _progress(progress, customers) as advance:
            for table in TABLES.values():
                con.execute(drop_table_sql(table))
                con.execute(create_table_sql(table))
            specs = [
                (block_no, first, min(BLOCK_CUSTOMERS, customers - first))
                for block_no, first in enumerate(range(0, customers, BLOCK_CUSTOMERS))
            ]

            def simulate(spec: tuple[int, int, int]) -> Block:
                block_no, first, n = spec
                rng = _block_rng(seed, block_no)
                return simulate_block(rng, first + 1, n, start_day, HISTORY_DAYS, seed)

            # Simulate the next block in a thread while DuckDB inserts this one
            # (numpy and DuckDB both release the GIL for their heavy work).
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kequn-generate") as pool:
                upcoming = pool.submit(simulate, specs[0])
                for index, (_, _, n) in enumerate(specs):
                    block = upcoming.result()
                    if index + 1 < len(specs):
                        upcoming = pool.submit(simulate, specs[index + 1])
                    tables, offsets = block_tables(block, offsets, epoch_seconds)
                    del block
                    for name, arrow_table in tables.items():
                        con.register(_STAGE, arrow_table)
                        try:
                            con.execute(_INSERT_SQL[name])
                        finally:
                            con.unregister(_STAGE)
                        rows[name] += arrow_table.num_rows
                    del tables
                    advance(n)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return GenerateStats(
        path=Path(path),
        customers=customers,
        seed=seed,
        start_date=start_date,
        end_date=end_date,
        rows=rows,
        seconds=time.perf_counter() - started,
    )
