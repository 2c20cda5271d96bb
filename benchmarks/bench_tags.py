"""Benchmark of the full tag build against one hand-written fused DuckDB query.

The kequn side runs exactly what the Dagster tag step runs: ``tags.build.build_day`` (one
query computing every tag, each source's atomic tags by one fused scan, written once to
the wide table; then one scan of the written day for the statistics, the checks' counts,
the distributions and the catalog). The baseline is one hand-written query (below)
computing the same columns, written with ``CREATE TABLE ... AS``. Both run in the same
process on the same warehouse, alternating, and the results are compared row for row.

    python -m benchmarks.bench_tags                       # 10M customers, 3 runs each
    python -m benchmarks.bench_tags --customers 100000 --runs 1 --no-record

The generated warehouse is cached under benchmarks/out/ (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
RESULTS = HERE / "results" / "tags.md"
SEED = 7
END = date(2026, 6, 30)

HAND_WRITTEN = """
CREATE OR REPLACE TABLE bench.hand_customer_tags AS
WITH ca AS (
  SELECT customer_id,
    count(*) AS application_count,
    bool_or(decision = 'APPROVED') FILTER (WHERE decided_at < $end) AS credit_granted,
    arg_max(credit_limit, decided_at)
      FILTER (WHERE decision = 'APPROVED' AND decided_at < $end) AS credit_limit,
    bool_or(decided_at IS NULL OR decided_at >= $end) AS pending_application,
    bool_or(credit_method = 'PRE_APPROVED') AS pre_approved,
    bool_or(decision = 'REJECTED' AND decided_at >= $day - INTERVAL 29 DAY)
      FILTER (WHERE decided_at < $end) AS rejected_recently
  FROM raw.credit_applications
  WHERE applied_at < $end
  GROUP BY customer_id
), lo AS (
  SELECT customer_id,
    count(*) FILTER (WHERE disbursed_at < $end AND (settled_at IS NULL OR settled_at >= $end))
      AS active_loan_count,
    bool_or(disbursed_at < $end) AS drawn,
    bool_or(status = 'FAILED') AS failed_drawdown,
    CAST(min(disbursed_at) FILTER (WHERE disbursed_at < $end) AS DATE) AS first_drawn_date,
    date_diff('day', CAST(max(disbursed_at) FILTER (WHERE disbursed_at < $end) AS DATE), $day)
      AS last_drawn_days_ago,
    count(*) FILTER (WHERE disbursed_at < $end) AS loan_count,
    sum(principal) FILTER (WHERE disbursed_at < $end
                             AND (settled_at IS NULL OR settled_at >= $end))
      AS outstanding_principal,
    count(*) FILTER (WHERE settled_at < $end) AS settled_loan_count
  FROM raw.loans
  WHERE applied_at < $end
  GROUP BY customer_id
), ins AS (
  SELECT l.customer_id,
    bool_or(i.paid_at IS NULL OR CAST(i.paid_at AS DATE) > i.due_date)
      FILTER (WHERE i.due_date < $day) AS ever_overdue,
    count(*) FILTER (WHERE i.paid_at < $end AND CAST(i.paid_at AS DATE) > i.due_date)
      AS late_payment_count,
    max(date_diff('day', i.due_date, least(coalesce(CAST(i.paid_at AS DATE), $day), $day)))
      FILTER (WHERE i.due_date < $day
                AND (i.paid_at IS NULL OR CAST(i.paid_at AS DATE) > i.due_date))
      AS max_overdue_days_ever,
    bool_or(i.paid_at IS NULL OR i.paid_at >= $end) FILTER (WHERE i.due_date < $day) AS overdue,
    max(date_diff('day', i.due_date, $day))
      FILTER (WHERE i.due_date < $day AND (i.paid_at IS NULL OR i.paid_at >= $end))
      AS overdue_days,
    count(*) FILTER (WHERE i.paid_at < $end) AS paid_installment_count
  FROM raw.installments AS i JOIN raw.loans AS l ON l.loan_id = i.loan_id
  WHERE i.due_date < $day OR i.paid_at < $end
  GROUP BY l.customer_id
), atomic AS (
  SELECT c.customer_id,
    coalesce(ca.application_count, 0) AS application_count,
    coalesce(ca.credit_granted, false) AS credit_granted,
    ca.credit_limit,
    coalesce(ca.pending_application, false) AS pending_application,
    coalesce(ca.pre_approved, false) AS pre_approved,
    coalesce(ca.rejected_recently, false) AS rejected_recently,
    coalesce(lo.active_loan_count, 0) AS active_loan_count,
    coalesce(lo.drawn, false) AS drawn,
    coalesce(lo.failed_drawdown, false) AS failed_drawdown,
    lo.first_drawn_date,
    lo.last_drawn_days_ago,
    coalesce(lo.loan_count, 0) AS loan_count,
    coalesce(lo.outstanding_principal, 0) AS outstanding_principal,
    coalesce(lo.settled_loan_count, 0) AS settled_loan_count,
    c.channel,
    c.city,
    c.customer_type,
    c.customer_type = 'STAFF' AS is_staff,
    date_diff('day', CAST(c.registered_at AS DATE), $day) AS registered_days,
    coalesce(ins.ever_overdue, false) AS ever_overdue,
    coalesce(ins.late_payment_count, 0) AS late_payment_count,
    ins.max_overdue_days_ever,
    coalesce(ins.overdue, false) AS overdue,
    ins.overdue_days,
    coalesce(ins.paid_installment_count, 0) AS paid_installment_count
  FROM raw.customers AS c
  LEFT JOIN ca ON ca.customer_id = c.customer_id
  LEFT JOIN lo ON lo.customer_id = c.customer_id
  LEFT JOIN ins ON ins.customer_id = c.customer_id
  WHERE c.registered_at < $end
)
SELECT $day AS as_of, *,
  coalesce(drawn AND active_loan_count = 0 AND last_drawn_days_ago > 180, false)
    AS dormant_customer,
  drawn AND NOT ever_overdue AS drawn_never_overdue,
  credit_granted AND NOT drawn AS granted_not_drawn,
  coalesce(credit_limit >= 20000 AND active_loan_count = 0, false) AS high_limit_unused,
  -- exact, rounded half away from zero (a DECIMAL / DECIMAL is a DOUBLE in DuckDB, which
  -- rounds ties such as 123700 / 80000 = 1.54625 down): the value kequn stores
  CAST(CASE WHEN credit_limit > 0 THEN CAST((CAST(outstanding_principal * 100 AS HUGEINT)
       * 20000 + CAST(credit_limit * 100 AS HUGEINT)) // (2 * CAST(credit_limit * 100 AS HUGEINT))
       AS DECIMAL(18, 0)) * CAST(0.0001 AS DECIMAL(18, 4)) END AS DECIMAL(18, 4))
    AS limit_utilisation,
  coalesce(overdue_days > 30, false) AS m1_plus,
  loan_count >= 2 AS repeat_borrower,
  CASE WHEN overdue_days > 90 THEN 'M3+' WHEN overdue_days > 30 THEN 'M1+'
       WHEN overdue THEN 'OVERDUE' WHEN ever_overdue THEN 'RECOVERED' ELSE 'CLEAN' END
    AS risk_level,
  coalesce(credit_granted AND NOT drawn AND NOT is_staff AND NOT ever_overdue
           AND registered_days BETWEEN 7 AND 365, false) AS wake_up_target
FROM atomic
"""


def warehouse_for(customers: int) -> Path:
    """The cached generated warehouse for ``customers`` (generated when missing)."""
    from generate import generate_warehouse

    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"tags_{customers}_seed{SEED}_{END}.duckdb"
    if not path.exists():
        started = time.perf_counter()
        partial = path.with_suffix(".partial.duckdb")
        partial.unlink(missing_ok=True)
        generate_warehouse(partial, customers=customers, seed=SEED, end_date=END, progress=True)
        partial.rename(path)
        print(f"generated {customers:,} customers in {time.perf_counter() - started:.0f} s",
              flush=True)
    return path


def hand_written_sql(day: date) -> str:
    """The baseline query for ``day`` (the day is this script's constant, not user input)."""
    end = f"TIMESTAMP '{date.fromordinal(day.toordinal() + 1).isoformat()} 00:00:00'"
    return HAND_WRITTEN.replace("$end", end).replace("$day", f"DATE '{day.isoformat()}'")


def _machine() -> str:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.machine()}, {os.cpu_count()} CPUs, {pages / 2**30:.0f} GiB RAM, "
            f"Python {platform.python_version()}, load average before the runs {load}")


def main(argv: list[str] | None = None) -> None:
    """Time both sides ``--runs`` times (alternating), compare results, print and record."""
    import duckdb

    from kequn.settings import REPO_ROOT
    from plan import compile_project
    from plan.tags import WIDE
    from project.loader import load_project
    from tags.build import build_day
    from warehouse.db import connect

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="Only print the results.")
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])

    machine = _machine()
    path = warehouse_for(args.customers)
    plan = compile_project(load_project(REPO_ROOT / "sql")).tags  # compiled once, as Dagster does
    con = connect(path)
    con.execute("CREATE SCHEMA IF NOT EXISTS bench")
    counts = {t: con.execute(f"SELECT count(*) FROM raw.{t}").fetchone()[0]
              for t in ("customers", "credit_applications", "loans", "installments")}
    kequn_runs, hand_runs = [], []
    kequn_cpu, hand_cpu = [], []
    for index in range(args.runs):
        cpu = time.process_time()
        started = time.perf_counter()
        build_day(con, plan, END)
        done = time.perf_counter()
        kequn_cpu.append(time.process_time() - cpu)
        kequn_runs.append(done - started)

        cpu = time.process_time()
        started = time.perf_counter()
        con.execute(hand_written_sql(END))
        hand_runs.append(time.perf_counter() - started)
        hand_cpu.append(time.process_time() - cpu)

        print(f"run {index + 1}/{args.runs}: kequn {kequn_runs[-1]:.1f} s "
              f"(CPU {kequn_cpu[-1]:.1f} s), hand-written {hand_runs[-1]:.1f} s "
              f"(CPU {hand_cpu[-1]:.1f} s)", flush=True)

    columns = ", ".join(["as_of", "customer_id", *plan.tags])
    diff = con.execute(
        f"SELECT count(*) FROM ((SELECT {columns} FROM {WIDE} WHERE as_of = ? "
        f"EXCEPT ALL SELECT {columns} FROM bench.hand_customer_tags) UNION ALL "
        f"(SELECT {columns} FROM bench.hand_customer_tags EXCEPT ALL "
        f"SELECT {columns} FROM {WIDE} WHERE as_of = ?))", [END, END]).fetchone()[0]
    rows = con.execute(f"SELECT count(*) FROM {WIDE} WHERE as_of = ?", [END]).fetchone()[0]
    con.close()
    if diff:
        raise SystemExit(f"the two builds disagree on {diff} rows")

    kequn, hand = statistics.median(kequn_runs), statistics.median(hand_runs)
    paired = [k / h for k, h in zip(kequn_runs, hand_runs, strict=True)]
    atomic_n = sum(1 for t in plan.tags.values() if t.kind == "atomic")
    derived_n = len(plan.tags) - atomic_n
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    table = "\n".join([
        f"Measured {stamp} on {machine}; DuckDB {duckdb.__version__}.",
        "",
        f"Warehouse: {args.customers:,} customers (seed {SEED}, as of {END}): "
        + ", ".join(f"{t} {n:,}" for t, n in counts.items()) + ".",
        f"Tags: {atomic_n} atomic in {len(plan.groups)} fused source queries, "
        f"{derived_n} derived; wide table {rows:,} rows x {atomic_n + derived_n} tag columns.",
        "",
        "| build | runs | median s | min..max s |",
        "|---|---:|---:|---|",
        _row("kequn full build (build_day: the one query written once, then one scan for "
             "statistics, checks' counts, distributions, catalog; what Dagster runs)",
             kequn_runs),
        _row("hand-written single fused query (CREATE TABLE AS)", hand_runs),
        _row("kequn full build, process CPU time (all DuckDB threads)", kequn_cpu),
        _row("hand-written query, process CPU time (all DuckDB threads)", hand_cpu),
        "",
        f"Ratio kequn / hand-written, wall time: **{kequn / hand:.2f}x** (medians; target "
        f"<= 1.3x); per run, each kequn build against the hand-written query right after it: "
        f"{', '.join(f'{r:.2f}x' for r in paired)} "
        f"(median {statistics.median(paired):.2f}x). "
        f"CPU time (less sensitive to other processes on a shared machine): "
        f"**{statistics.median(kequn_cpu) / statistics.median(hand_cpu):.2f}x**.",
        "",
        "Both results were compared row for row (EXCEPT ALL both ways): identical.",
        "",
    ])
    print(table)
    if not args.no_record:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("# Tag build: kequn vs one hand-written fused query\n\n" + table)


def _row(label: str, runs: list[float]) -> str:
    return (f"| {label} | {len(runs)} | {statistics.median(runs):.2f} "
            f"| {min(runs):.2f}..{max(runs):.2f} |")


if __name__ == "__main__":
    main()
