"""Benchmark of the demo warehouse generator: wall time and peak memory per scale.

Each run generates a warehouse into a fresh temporary file in a fresh child
process, so that the peak resident set size (:mod:`benchmarks.measured`) is that
run's alone. Prints a Markdown table and records it in
``benchmarks/results/generate.md``.

    python -m benchmarks.bench_generate                      # 100k x5, 10M x3
    python -m benchmarks.bench_generate --scale 1000000:2    # customers:runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.measured import run_measured

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "generate.md"
DEFAULT_SCALES = ((100_000, 5), (10_000_000, 3))
END_DATE = "2026-06-30"
SEED = 7

_CHILD = """
import json, sys
from datetime import date
from generate import generate_warehouse
stats = generate_warehouse(sys.argv[1], customers=int(sys.argv[2]), seed=int(sys.argv[3]),
                           end_date=date.fromisoformat(sys.argv[4]))
print(json.dumps({"seconds": stats.seconds, "rows": stats.rows}))
"""


@dataclass(frozen=True)
class Run:
    """One generation: its time inside ``generate_warehouse``, the process's, and memory."""

    customers: int
    seconds: float
    process_seconds: float
    peak_rss_mib: float
    file_mib: float
    rows: dict[str, int]


def run_once(customers: int, seed: int = SEED, end_date: str = END_DATE) -> Run:
    """Generate ``customers`` in a child process and measure it."""
    with tempfile.TemporaryDirectory(prefix="kequn-bench-") as folder:
        path = Path(folder) / "warehouse.duckdb"
        child = run_measured([sys.executable, "-c", _CHILD, str(path), str(customers),
                              str(seed), end_date])
        if child.returncode != 0:
            raise RuntimeError(f"generation of {customers} customers failed "
                               f"({child.returncode}): {child.stderr.decode()[-2000:]}")
        result = json.loads(child.stdout.splitlines()[-1])
        size = path.stat().st_size / 2**20
    return Run(customers, result["seconds"], child.seconds, child.max_rss_kib / 1024, size,
               result["rows"])


def _machine() -> str:
    cpus = os.cpu_count()
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f"{pages / 2**30:.0f} GiB RAM"
    except (ValueError, OSError):
        memory = "unknown RAM"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{platform.machine()}, {cpus} CPUs, {memory}, Python {platform.python_version()}, " \
        f"load average before the runs {load}"


def report(runs: list[Run], machine: str) -> str:
    """A Markdown table: median (min..max) time and peak memory per scale."""
    lines = [
        "| customers | runs | generate_warehouse s, median (min..max) | process s, median "
        "| peak RSS MiB, median (max) | file MiB | applications | loans | installments |",
        "|---:|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    for customers in sorted({r.customers for r in runs}):
        mine = [r for r in runs if r.customers == customers]
        secs = [r.seconds for r in mine]
        rss = [r.peak_rss_mib for r in mine]
        rows = mine[0].rows
        lines.append(
            f"| {customers:,} | {len(mine)} | {statistics.median(secs):.1f} "
            f"({min(secs):.1f}..{max(secs):.1f}) "
            f"| {statistics.median(r.process_seconds for r in mine):.1f} "
            f"| {statistics.median(rss):,.0f} ({max(rss):,.0f}) | {mine[0].file_mib:,.0f} "
            f"| {rows['credit_applications']:,} | {rows['loans']:,} "
            f"| {rows['installments']:,} |"
        )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Measured {stamp} on {machine}; seed {SEED}, end date {END_DATE}.\n\n"
        + "\n".join(lines)
        + "\n"
    )


def main(argv: list[str] | None = None) -> None:
    """Run the scales (``customers:runs``), print the table and record it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", action="append", default=[], metavar="CUSTOMERS:RUNS")
    parser.add_argument("--no-record", action="store_true", help="Only print the table.")
    args = parser.parse_args(argv or [])
    scales = [tuple(int(x) for x in s.split(":")) for s in args.scale] or list(DEFAULT_SCALES)
    machine = _machine()
    runs: list[Run] = []
    for customers, count in scales:
        for index in range(count):
            run = run_once(customers)
            runs.append(run)
            print(
                f"{customers:>11,} customers  run {index + 1}/{count}: {run.seconds:7.1f} s  "
                f"peak RSS {run.peak_rss_mib:8,.0f} MiB",
                flush=True,
            )
    table = report(runs, machine)
    print(table)
    if not args.no_record:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("# Demo warehouse generator\n\n" + table)


if __name__ == "__main__":
    main(sys.argv[1:])
