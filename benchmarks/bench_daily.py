"""The whole day through the real path against the bare engine work it stands for.

*kequn*: ``kequn materialize --as-of D`` as a subprocess (process start, definitions,
the Dagster run and its bookkeeping included): every tag, segment, sync and campaign of
the project in ``sql/``, on a generated warehouse, into a SQLite serving database that
holds the previous day's sync (so the sync is a daily diff and the campaign issues a new
day's coupons). Its peak memory is the subprocess's own max RSS
(:mod:`benchmarks.measured`); its per-step table comes from the run's step statistics in
the Dagster instance.

*bare*: the engine work the day stands for, in this process, hand-written: the fused tag
query of ``benchmarks/bench_tags.py`` (``CREATE TABLE AS``), a filter per segment of
``sql/segments`` over its result (six), the diff of each synced segment (three) against
the previous day's members applied to SQLite in one transaction, and one
``INSERT ... SELECT`` of the day's coupon rows (the campaign's daily limit) into the
coupons table.

The two alternate, ``--runs`` times each, and the paired ratio is reported. The day
before is materialised once first, untimed, without the campaigns (issuance counts its
daily limit by the day it runs, so a campaign run for the day before would use up the
measured day's limit).

    python -m benchmarks.bench_daily                           # 10M customers, 3 runs
    python -m benchmarks.bench_daily --customers 100000 --runs 1 --no-record
    python -m benchmarks.bench_daily --tags-only    # the tag build alone (target 1.3x)

``--tags-only`` measures issue 10's third target: ``kequn materialize --select 'key:tags/*'``
against the hand-written fused query alone (results in ``results/daily_tags.md``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.bench_tags import END, OUT, _machine, hand_written_sql, warehouse_for
from benchmarks.measured import compile_project, run_measured
from kequn.tables import (
    CATALOG,
    CUSTOMER_TAGS,
    DISTRIBUTION,
    HISTORY,
    MATERIALIZATIONS,
    MEMBERS,
    SYNC_APPLIED,
    SYNC_MARKER,
    qualified,
)
from serving.db import BULK_CACHE_KIB

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "daily.md"
TAGS_RESULTS = HERE / "results" / "daily_tags.md"
TAGS_SELECTION = "key:tags/*"
DAY = END
BEFORE = END - timedelta(days=1)
KEQUN = Path(sys.executable).parent / "kequn"
DAILY_COUPONS = 200_000  # the daily limit of sql/campaigns/wake_up_30d.yaml

# The segments of sql/segments as plain filters over the hand-written wide table.
SEGMENT_FILTERS = {
    "wake_up": "SELECT customer_id FROM bench.hand_customer_tags "
               "WHERE granted_not_drawn AND NOT overdue AND registered_days >= 30",
    "overdue_now": "SELECT customer_id FROM bench.hand_customer_tags WHERE overdue AND "
                   "overdue_days BETWEEN 1 AND 90 AND customer_type IN ('NORMAL', 'H5_REFERRAL')",
    "repeat_big_borrowers": (
        "SELECT customer_id FROM raw.loans WHERE disbursed_at < TIMESTAMP '{end}' "
        "GROUP BY customer_id HAVING count(*) >= 2 AND sum(principal) >= 20000"),
    "vip_list": "SELECT customer_id FROM bench.hand_customer_tags WHERE false",
    "borrowers": "SELECT customer_id FROM bench.hand_customer_tags WHERE drawn",
    "wake_up_campaign": "(SELECT customer_id FROM bench_seg_wake_up UNION "
                        "SELECT customer_id FROM bench_seg_vip_list) EXCEPT "
                        "SELECT customer_id FROM bench_seg_overdue_now",
}
SYNCED = ("wake_up", "vip_list", "borrowers")


@dataclass
class KequnRun:
    """One timed ``kequn materialize`` subprocess."""

    seconds: float
    max_rss_kib: int
    times: dict[str, tuple[float, float]]
    """(start, end) of each step, seconds after the first step started."""

    @property
    def steps(self) -> dict[str, float]:
        """Seconds per step (steps run two at a time: they may add up to more than the
        run)."""
        return {step: end - start for step, (start, end) in self.times.items()}

    @property
    def span(self) -> float:
        """Seconds from the first step's start to the last step's end."""
        return max((end for _, end in self.times.values()), default=0.0)


def _env(folder: Path, serving: Path, warehouse: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(KEQUN_WAREHOUSE=str(warehouse), KEQUN_SERVING_URL=f"sqlite:///{serving}",
               DAGSTER_HOME=str(folder / "dagster_home"),
               # the benchmark's days, whatever first day a local demo recorded
               KEQUN_FIRST_DAY=BEFORE.isoformat())
    return env


def _kequn(env: dict[str, str], *args: str) -> tuple[float, int]:
    """Run ``kequn args`` to completion; (wall seconds, its own max RSS in KiB)."""
    run = run_measured([str(KEQUN), *args], env=env)
    if run.returncode != 0:
        raise RuntimeError(f"kequn {' '.join(args)} failed:\n{run.output.decode()[-3000:]}")
    return run.seconds, run.max_rss_kib


def _step_times(dagster_home: Path) -> dict[str, tuple[float, float]]:
    """(start, end) per step of the latest run in the instance under ``dagster_home``, in
    seconds after its first step started."""
    import dagster as dg

    # the instance's storage lives under $DAGSTER_HOME (dagster_project/dagster.yaml)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        run = instance.get_runs(limit=1)[0]
        stats = instance.get_run_step_stats(run.run_id)
        first = min((s.start_time or 0) for s in stats) if stats else 0.0
        return {s.step_key: ((s.start_time or first) - first, (s.end_time or first) - first)
                for s in stats}
    finally:
        instance.dispose()


TRACKING = tuple(qualified(t) for t in (SYNC_APPLIED, SYNC_MARKER))
"""What the warehouse records of the last syncs: restored before each run, so that every
run finds them matching the serving database as the day before left both (a run that
found the next day's tracking would repair the drift by reading the table back)."""
DAY_ROWS = tuple(qualified(t) for t in (CUSTOMER_TAGS, CATALOG, DISTRIBUTION, MEMBERS,
                                         MATERIALIZATIONS, HISTORY))
"""The warehouse's tables with rows per day (``as_of``): the timed day's rows are removed
before each run, so that every run builds a new day, as the day's scheduled run does (a
run of a day already stored deletes its rows first: 10M rows of the wide table)."""


def _tracking(warehouse: Path, *, save: bool) -> None:
    """Save the warehouse's sync tracking as the previous day left it; or restore it and
    remove the timed day's rows (:data:`DAY_ROWS`), leaving the warehouse as the day
    before left it."""
    import duckdb

    con = duckdb.connect(str(warehouse))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS bench")
        con.execute("BEGIN")
        for table in TRACKING:
            copy = f"bench.{table.replace('.', '_')}_before"
            if save:
                con.execute(f"CREATE OR REPLACE TABLE {copy} AS SELECT * FROM {table}")
            else:
                con.execute(f"DELETE FROM {table}")
                con.execute(f"INSERT INTO {table} SELECT * FROM {copy}")
        if not save:
            for table in DAY_ROWS:
                con.execute(f"DELETE FROM {table} WHERE as_of = ?", [DAY])
        con.execute("COMMIT")
    finally:
        con.close()


def run_kequn(folder: Path, warehouse: Path, baseline: Path, *,
              tags_only: bool = False) -> KequnRun:
    """One whole day (or its tags alone) through the CLI on a copy of the previous day's
    serving database, the warehouse as that day left it (its sync tracking, no rows of
    the day)."""
    serving = folder / "serving.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{serving}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(baseline, serving)
    env = _env(folder, serving, warehouse)
    _tracking(warehouse, save=False)
    select = ("--select", TAGS_SELECTION) if tags_only else ()
    seconds, rss = _kequn(env, "materialize", "--as-of", DAY.isoformat(), *select)
    return KequnRun(seconds, rss, _step_times(folder / "dagster_home"))


def _coupon_ids(customers: list[int]) -> list[tuple[str, int]]:
    return sorted((hashlib.sha256(f"bare:{c}".encode()).hexdigest()[:20], c)
                  for c in customers)


def run_bare(warehouse: Path, baseline: Path, folder: Path, *,
             tags_only: bool = False) -> dict[str, float]:
    """The bare engine work of the day (or of its tags alone); seconds per part (and
    ``total``)."""
    import duckdb

    times: dict[str, float] = {}
    serving = folder / "bare.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{serving}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(baseline, serving)
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS bench")
        started = time.perf_counter()
        con.execute(hand_written_sql(DAY))
        times["fused tag query"] = time.perf_counter() - started
        if tags_only:
            times["total"] = times["fused tag query"]
            return times
        started = time.perf_counter()
        end = (DAY + timedelta(days=1)).isoformat()
        for name, sql in SEGMENT_FILTERS.items():
            con.execute(f"CREATE OR REPLACE TEMP TABLE bench_seg_{name} AS "
                        + sql.format(end=end))
        times["segment filters"] = time.perf_counter() - started
        started = time.perf_counter()
        lite = sqlite3.connect(serving, isolation_level=None)
        lite.execute("PRAGMA journal_mode = WAL")
        lite.execute("PRAGMA synchronous = NORMAL")
        lite.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")  # as kequn's bulk writes
        for name in SYNCED:  # the previous day's members, as the untimed day stored them
            before = ("SELECT customer_id FROM segments.members "
                      "WHERE segment = ? AND as_of = ?")
            added = con.execute(f"SELECT customer_id FROM bench_seg_{name} EXCEPT {before}",
                                [name, BEFORE]).fetchall()
            removed = con.execute(f"{before} EXCEPT SELECT customer_id FROM bench_seg_{name}",
                                  [name, BEFORE]).fetchall()
            now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
            lite.execute("BEGIN IMMEDIATE")
            lite.executemany("DELETE FROM coupon_eligibility WHERE segment = ? AND "
                             "customer_id = ?", ((name, c) for (c,) in removed))
            lite.executemany("INSERT INTO coupon_eligibility (segment, customer_id, as_of, "
                             "synced_at) VALUES (?, ?, ?, ?)",
                             ((name, c, DAY.isoformat(), now) for (c,) in added))
            lite.execute("COMMIT")
        times["snapshot diff + apply"] = time.perf_counter() - started
        members = [int(c) for (c,) in con.execute(
            "SELECT customer_id FROM bench_seg_wake_up ORDER BY customer_id").fetchall()]
        rows = _coupon_ids(members)[:DAILY_COUPONS]
    finally:
        con.close()
    lite.execute("CREATE TEMP TABLE src (coupon_id TEXT, customer_id BIGINT)")
    lite.executemany("INSERT INTO src VALUES (?, ?)", rows)
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
    started = time.perf_counter()
    lite.execute("BEGIN IMMEDIATE")
    lite.execute(
        "INSERT INTO coupons (coupon_id, campaign, customer_id, status, template_kind, "
        "template_value, exclusive, on_failed_drawdown, channels, lease_seconds, issued_at, "
        "issue_day, valid_from, valid_until, loan_id, lease_until, version, updated_at) "
        "SELECT coupon_id, 'bare', customer_id, 'unused', 'interest_free_days', '30', 1, "
        "'void', 'APP,MINI_PROGRAM', 900, ?, ?, ?, ?, NULL, NULL, 1, ? FROM src "
        "ORDER BY coupon_id", (now, DAY.isoformat(), now, now, now))
    lite.execute("COMMIT")
    times["coupon insert"] = time.perf_counter() - started
    lite.close()
    times["total"] = sum(times.values())
    return times


def prepare(folder: Path, customers: int) -> tuple[Path, Path]:
    """A private copy of the cached warehouse with the day before materialised (untimed,
    campaigns left out), and the serving database as that day left it."""
    compile_project()
    source = warehouse_for(customers)
    warehouse = folder / f"daily_{customers}.duckdb"
    if not warehouse.exists():
        print(f"copying {source.name} ...", flush=True)
        shutil.copyfile(source, warehouse)
    serving = folder / "before.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{serving}{suffix}").unlink(missing_ok=True)
    env = _env(folder, serving, warehouse)
    print(f"materialising {BEFORE} (untimed) ...", flush=True)
    seconds, _ = _kequn(env, "materialize", "--as-of", BEFORE.isoformat(),
                        "--select", "not key:issuance/*")
    print(f"  {seconds:.1f} s", flush=True)
    # only a live campaign issues: take the project's campaigns live as the demo does
    # (submitted and approved by the users of sql/roles.yaml), untimed
    subprocess.run([sys.executable, "-c", "from app.context import KequnContext; "
                    "from app.economics_demo import approve_campaigns; "
                    "print(*approve_campaigns(KequnContext()))"],
                   env=env, check=True, cwd=HERE.parent)
    lite = sqlite3.connect(serving, isolation_level=None)
    lite.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    lite.close()
    _tracking(warehouse, save=True)
    return warehouse, serving


def main(argv: list[str] | None = None) -> None:
    """Alternate the two sides ``--runs`` times; print the report and record it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--tags-only", action="store_true",
                        help="only the tag build: kequn's tag assets vs the fused query")
    args = parser.parse_args(argv)

    machine = _machine()
    folder = OUT / f"daily_{args.customers}"
    folder.mkdir(parents=True, exist_ok=True)
    warehouse, baseline = prepare(folder, args.customers)
    kequn_runs: list[KequnRun] = []
    bare_runs: list[dict[str, float]] = []
    for index in range(args.runs):
        bare_runs.append(run_bare(warehouse, baseline, folder, tags_only=args.tags_only))
        kequn_runs.append(run_kequn(folder, warehouse, baseline, tags_only=args.tags_only))
        print(f"run {index + 1}: kequn {kequn_runs[-1].seconds:.1f} s "
              f"({kequn_runs[-1].max_rss_kib / 2**20:.2f} GiB peak), "
              f"bare {bare_runs[-1]['total']:.1f} s", flush=True)
    report = render(args, machine, kequn_runs, bare_runs)
    print(report)
    if not args.no_record:
        results = TAGS_RESULTS if args.tags_only else RESULTS
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(report, encoding="utf-8")
        print(f"recorded in {results}")


def _cell(values: list[float]) -> str:
    return (f"{statistics.median(values):.2f} ({min(values):.2f}..{max(values):.2f})"
            if len(values) > 1 else f"{values[0]:.2f}")


def render(args: argparse.Namespace, machine: str, kequn_runs: list[KequnRun],
           bare_runs: list[dict[str, float]]) -> str:
    """The Markdown report."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    ratios = [k.seconds / b["total"] for k, b in zip(kequn_runs, bare_runs, strict=True)]
    target = 1.3 if args.tags_only else 1.5
    select = f" --select '{TAGS_SELECTION}'" if args.tags_only else ""
    lines = [
        "# The tag build of a day, end to end" if args.tags_only
        else "# The whole day, end to end",
        "",
        f"Measured {when} on {machine}; {args.customers:,} customers (generated, seed 7), "
        f"day {DAY}, {args.runs} alternating runs each side (median (min..max)).",
        "",
        "| what | seconds |",
        "|---|---|",
        f"| `kequn materialize --as-of {DAY}{select}` (subprocess, process start included) | "
        f"{_cell([k.seconds for k in kequn_runs])} |",
        f"| bare engine work | {_cell([b['total'] for b in bare_runs])} |",
        f"| **ratio (paired runs; target <= {target})** | **{_cell(ratios)}** |",
        f"| peak memory of the kequn process, GiB (target < 4) | "
        f"{_cell([k.max_rss_kib / 2**20 for k in kequn_runs])} |",
        "",
        "Bare parts:",
        "",
        "| part | seconds |",
        "|---|---|",
    ]
    for part in bare_runs[0]:
        if part != "total":
            lines.append(f"| {part} | {_cell([b[part] for b in bare_runs])} |")
    lines += ["", "Steps of the kequn run (Dagster step statistics; up to two steps run at "
              "once, one of them in the warehouse, so a step's seconds include any wait for "
              "the serving database's write lock; started: seconds after the first step "
              "started, first run):", "",
              "| step | seconds | started |", "|---|---|---|"]
    first = kequn_runs[0]
    for step in sorted(first.times, key=lambda s: first.times[s][0]):
        values = [k.steps.get(step, 0.0) for k in kequn_runs]
        lines.append(f"| `{step}` | {_cell(values)} | {first.times[step][0]:.2f} |")
    lines += [f"| (all steps: first start to last end) | {_cell([k.span for k in kequn_runs])} "
              "| |",
              "| (process start, definitions, run bookkeeping: the run less that) | "
              f"{_cell([k.seconds - k.span for k in kequn_runs])} | |", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
