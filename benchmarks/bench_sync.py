"""Benchmark of the segment sync: a first sync of a large segment and a daily sync with churn.

For each serving database (SQLite file; PostgreSQL from ``KEQUN_TEST_POSTGRES_URL`` or
a throwaway local cluster with default durability settings) and each run: a fresh
serving database (or schema) and fresh warehouse tracking, then

* **initial**: sync day 1 (``members`` ids) into an empty ``coupon_eligibility``;
* **daily**: sync day 2, where ``churn`` of day 1's members left and as many joined.

Times are end to end of :func:`sync.run.sync_segment` (lock, log row, DuckDB diff,
serving transaction, warehouse tracking update); rows/s counts rows written
(added + removed). Prints a Markdown table and records it in
``benchmarks/results/sync.md``.

    python -m benchmarks.bench_sync                       # 3M members, 5% churn, 3 runs
    python -m benchmarks.bench_sync --members 300000 --runs 1 --no-record
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "sync.md"
D1, D2 = date(2024, 3, 1), date(2024, 3, 2)
SEGMENT = "bench"


@dataclass(frozen=True)
class Run:
    """One measured sync."""

    dialect: str
    phase: str
    seconds: float
    added: int
    removed: int
    phases: dict[str, float]

    @property
    def rows_per_s(self) -> float:
        return (self.added + self.removed) / self.seconds if self.seconds else 0.0


def build_warehouse(path: Path, members: int, churn: float) -> None:
    """Day 1: ``members`` even ids; day 2: every ``1/churn``-th left, as many odd ids joined."""
    from warehouse import db as wh

    step = max(1, round(1 / churn)) if churn else 0
    con = wh.connect(path)
    con.execute("DELETE FROM segments.members WHERE segment = ?", [SEGMENT])
    con.execute("INSERT INTO segments.members SELECT ?, ?, i * 2 FROM range(?) t(i)",
                [SEGMENT, D1, members])
    if step:
        con.execute(
            "INSERT INTO segments.members SELECT ?, ?, i * 2 FROM range(?) t(i) "
            "WHERE i % ? <> 0 UNION ALL SELECT ?, ?, i * 2 + 1 FROM range(?) t(i) WHERE i % ? = 1",
            [SEGMENT, D2, members, step, SEGMENT, D2, members, step])
    else:
        con.execute("INSERT INTO segments.members SELECT ?, ?, i * 2 FROM range(?) t(i)",
                    [SEGMENT, D2, members])
    # the sync refuses a day the segments build has not recorded
    con.execute("DELETE FROM segments.materializations WHERE segment = ?", [SEGMENT])
    con.execute("INSERT INTO segments.materializations SELECT segment, as_of, count(*), NULL, "
                "current_timestamp FROM segments.members WHERE segment = ? GROUP BY ALL",
                [SEGMENT])
    con.execute("CHECKPOINT")
    con.close()


def one_run(dialect: str, url: str, warehouse: Path) -> list[Run]:
    """A fresh serving side, then the initial and the daily sync, each timed."""
    from project.sync import SyncSettings
    from serving.db import connect
    from sync.run import sync_segment
    from warehouse import db as wh

    settings = SyncSettings(max_removed_ratio=None)
    con = wh.connect(warehouse)
    con.execute("DELETE FROM sync.applied")  # fresh tracking (the migration made the tables)
    con.execute("DELETE FROM sync.marker")
    runs = []
    try:
        db = connect(url)
        try:
            for phase, day in (("initial", D1), ("daily", D2)):
                started = time.perf_counter()
                result = sync_segment(con, db, SEGMENT, day, settings)
                seconds = time.perf_counter() - started
                assert result.status == "applied", result
                runs.append(Run(dialect, phase, seconds, result.added, result.removed,
                                result.phases))
        finally:
            db.close()
    finally:
        con.close()
    return runs


def _postgres_base() -> tuple[str | None, object | None, str]:
    sys.path.insert(0, str(HERE.parent))
    from tests.pg import ENV_URL, find_server_binaries, start_cluster

    if os.environ.get(ENV_URL):
        return os.environ[ENV_URL], None, "KEQUN_TEST_POSTGRES_URL"
    bindir, why = find_server_binaries()
    if bindir is None:
        return None, None, why
    cluster = start_cluster(bindir, durable=True)
    return cluster.url, cluster, f"local PostgreSQL cluster ({bindir}), default fsync settings"


def _machine() -> str:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, {pages / 2**30:.0f} GiB RAM, "
            f"Python {platform.python_version()}, load average before the runs {load}")


def _phase(runs: list[Run], key: str) -> str:
    return f"{statistics.median(r.phases.get(key, 0.0) for r in runs):.2f}"


def report(runs: list[Run], members: int, churn: float, notes: list[str]) -> str:
    """A Markdown table: median (min..max) seconds and rows/s per database and phase."""
    lines = [
        "| serving DB | sync | runs | added | removed | end-to-end s, median (min..max) "
        "| rows written/s, median | plan / serving txn / warehouse s, median |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    for dialect in dict.fromkeys(r.dialect for r in runs):
        for phase in ("initial", "daily"):
            mine = [r for r in runs if r.dialect == dialect and r.phase == phase]
            if not mine:
                continue
            secs = [r.seconds for r in mine]
            lines.append(
                f"| {dialect} | {phase} | {len(mine)} | {mine[0].added:,} | {mine[0].removed:,} "
                f"| {statistics.median(secs):.2f} ({min(secs):.2f}..{max(secs):.2f}) "
                f"| {statistics.median(r.rows_per_s for r in mine):,.0f} "
                f"| {' / '.join(_phase(mine, k) for k in ('plan_s', 'serving_s', 'warehouse_s'))} |"
            )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"Measured {stamp} on {_machine()}.\n\n{members:,} members on day 1; "
            f"daily sync with {churn:.0%} churn ({churn:.0%} of members left, as many "
            "joined).\n\n" + "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes)
            + "\n")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the table and record it."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--members", type=int, default=3_000_000)
    parser.add_argument("--churn", type=float, default=0.05)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-record", action="store_true", help="Only print the table.")
    args = parser.parse_args(argv or [])
    sys.path.insert(0, str(HERE.parent))
    from tests.pg import fresh_schema_url

    runs: list[Run] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="kequn-bench-sync-") as folder:
        warehouse = Path(folder) / "warehouse.duckdb"
        build_warehouse(warehouse, args.members, args.churn)
        targets: list[tuple[str, object]] = [
            ("sqlite", lambda i: f"sqlite:///{folder}/serving-{i}.sqlite")]
        cluster = None
        if not args.no_postgres:
            base, cluster, where = _postgres_base()
            if base is None:
                notes.append(f"PostgreSQL not measured: {where}")
            else:
                notes.append(f"PostgreSQL: {where}.")
                targets.append(("postgresql", lambda i, b=base: fresh_schema_url(b, "bench")))
        notes.append("SQLite: WAL, synchronous=NORMAL, file in the system temp folder.")
        try:
            for dialect, make_url in targets:
                for index in range(args.runs):
                    measured = one_run(dialect, make_url(index), warehouse)  # type: ignore[operator]
                    runs.extend(measured)
                    print(f"{dialect:>10} run {index + 1}/{args.runs}: " + ", ".join(
                        f"{r.phase} {r.seconds:.2f} s ({r.rows_per_s:,.0f} rows/s) {r.phases}"
                        for r in measured), flush=True)
        finally:
            if cluster is not None:
                cluster.stop()  # type: ignore[attr-defined]
    table = report(runs, args.members, args.churn, notes)
    print(table)
    if not args.no_record:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("# Segment sync\n\n" + table)


if __name__ == "__main__":
    main(sys.argv[1:])
