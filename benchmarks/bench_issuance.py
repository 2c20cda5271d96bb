"""Benchmark of coupon issuance on the serving database.

1. Single-process issue throughput with every limit checked (idempotency key, window,
   eligibility, stock, daily limit, per-customer limit, exclusive stacking; coupon row
   and counters written; one ``BEGIN IMMEDIATE`` transaction per request),
   through :meth:`issuance.service.Issuer.issue`, alternating with the bare
   check-insert-decrement transaction in raw ``sqlite3`` (the reference figure of
   architecture §1) in the same process, so both see the same machine load.
2. Four processes issuing at once (started together at a barrier), distinct customers:
   aggregate requests per second, and the exact count is checked.
3. Batch issuance (:func:`issuance.batch.issue_batch`, what the ``issuance/<campaign>``
   asset runs) of 1M coupons to 1M eligible customers, alternating with its floor: one
   bare ``INSERT ... SELECT`` of as many coupon rows into the same table.
4. PostgreSQL hot row: ``--pg-procs`` (8) processes issue to one campaign at once,
   alternating with ``pgbench`` running the bare hot-row transaction (decrement the stock
   where it is > 0, insert the coupon) with as many clients on the same server; the
   paired ratio is the figure to watch (target >= 0.80).

Each run uses a fresh database file. Prints a Markdown report and records it in
``benchmarks/results/issuance.md``. With ``--postgres URL`` (or local PostgreSQL server
binaries) the single-process and concurrent figures are also taken on PostgreSQL.

    python -m benchmarks.bench_issuance                     # 20k single, 40k x4, 1M batch
    python -m benchmarks.bench_issuance --single 5000 --batch 20000 --no-record
    python -m benchmarks.bench_issuance --no-sqlite --no-record     # the PostgreSQL part
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from issuance.approval import take_live
from issuance.batch import issue_batch
from issuance.clock import SHANGHAI, SystemClock
from issuance.schema import migrate
from issuance.service import Issuer
from issuance.store import coupon_id_for
from project.campaign import Campaign, CouponTemplate, Validity
from project.roles import load_roles
from serving.db import ServingDB, connect

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "issuance.md"
SEGMENT = "bench_segment"


def bench_campaign(stock: int) -> Campaign:
    """An exclusive campaign open now with every limit set (none of them binding)."""
    return Campaign(
        name="bench", type="wake_up", target_segment=SEGMENT,
        window_start=datetime(2020, 1, 1, tzinfo=SHANGHAI),
        window_end=datetime(2040, 1, 1, tzinfo=SHANGHAI),
        template=CouponTemplate("interest_free_days", 30),
        validity=Validity(starts_after_days=0, days=30), total_stock=stock,
        daily_limit=stock, per_customer_limit=1, stacking="exclusive",
        on_failed_drawdown="void",
    )


def fresh_sqlite(folder: Path, name: str) -> str:
    path = folder / f"{name}.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path}"


def prepare(url: str, customers: int) -> ServingDB:
    """A migrated serving DB with ``customers`` eligible members (ids 1..n) and the bench
    campaign live (only a live campaign issues; approved by the users of sql/roles.yaml)."""
    db = connect(url)
    migrate(db)
    take_live(db, bench_campaign(1), load_roles(Path(__file__).resolve().parents[1] / "sql"))
    with db.transaction():
        db.executemany(
            "INSERT INTO coupon_eligibility (segment, customer_id, as_of, synced_at) "
            "VALUES (?, ?, ?, ?)",
            ((SEGMENT, c, "2026-01-01", datetime(2026, 1, 1)) for c in range(1, customers + 1)),
        )
    return db


def run_single(url: str, n: int) -> float:
    """Issue ``n`` coupons one request at a time; requests per second."""
    db = prepare(url, n)
    campaign = bench_campaign(10 * n)
    issuer = Issuer(db, {campaign.name: campaign}, SystemClock())
    start = time.perf_counter()
    for customer in range(1, n + 1):
        outcome = issuer.issue("bench", customer, f"req-{customer}")
        assert outcome.ok, outcome
    seconds = time.perf_counter() - start
    assert db.scalar("SELECT count(*) FROM coupons") == n
    db.close()
    return n / seconds


def run_bare(folder: Path, n: int) -> float:
    """The reference: BEGIN IMMEDIATE; check stock; insert; decrement; COMMIT (raw sqlite3)."""
    url = fresh_sqlite(folder, "bare")
    con = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    con.execute("CREATE TABLE stock (campaign TEXT PRIMARY KEY, remaining INTEGER)")
    con.execute("CREATE TABLE coupons (id INTEGER PRIMARY KEY, customer_id INTEGER, "
                "status TEXT)")
    con.execute("INSERT INTO stock VALUES ('bench', ?)", (10 * n,))
    start = time.perf_counter()
    for customer in range(1, n + 1):
        con.execute("BEGIN IMMEDIATE")
        (remaining,) = con.execute(
            "SELECT remaining FROM stock WHERE campaign = 'bench'").fetchone()
        if remaining > 0:
            con.execute("INSERT INTO coupons (customer_id, status) VALUES (?, 'unused')",
                        (customer,))
            con.execute("UPDATE stock SET remaining = remaining - 1 WHERE campaign = 'bench'")
        con.execute("COMMIT")
    seconds = time.perf_counter() - start
    con.close()
    return n / seconds


def _worker(url: str, first: int, count: int, stock: int, barrier: Any, out: Any) -> None:
    db = connect(url)
    migrate(db)
    campaign = bench_campaign(stock)
    issuer = Issuer(db, {campaign.name: campaign}, SystemClock())
    barrier.wait()
    start = time.time()
    ok = sum(issuer.issue("bench", c, f"req-{c}").ok for c in range(first, first + count))
    out.put((start, time.time(), ok))
    db.close()


def run_concurrent(url: str, n: int, procs: int) -> float:
    """``procs`` processes issue ``n`` coupons in total at once; aggregate requests/s."""
    prepare(url, n).close()
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(procs), ctx.Queue()
    share = n // procs
    workers = [ctx.Process(target=_worker,
                           args=(url, 1 + i * share, share, 10 * n, barrier, out))
               for i in range(procs)]
    for w in workers:
        w.start()
    results = [out.get(timeout=3600) for _ in workers]
    for w in workers:
        w.join()
        assert w.exitcode == 0
    issued = sum(r[2] for r in results)
    assert issued == share * procs
    with connect(url) as db:
        assert db.scalar("SELECT count(*) FROM coupons") == issued
    return issued / (max(r[1] for r in results) - min(r[0] for r in results))


def run_batch(url: str, n: int) -> tuple[float, float, float]:
    """Batch-issue to ``n`` eligible customers, then one expiry pass over them (nothing
    due: the cost of its scan); (batch seconds, coupons/s, expiry seconds)."""
    db = prepare(url, n)
    campaign = bench_campaign(n)
    issuer = Issuer(db, {campaign.name: campaign}, SystemClock())
    day = datetime.now(SHANGHAI).date()
    start = time.perf_counter()
    report = issue_batch(issuer, campaign, day)
    seconds = time.perf_counter() - start
    assert report.issued == n, report
    start = time.perf_counter()
    expiry = issuer.expire()
    expiry_seconds = time.perf_counter() - start
    assert (expiry.released, expiry.expired) == (0, 0)
    db.close()
    return seconds, n / seconds, expiry_seconds


PGBENCH_SCRIPT = """\\set c random(1, 1000000000)
BEGIN;
UPDATE bench_stock SET stock = stock - 1 WHERE campaign = 'bench' AND stock > 0;
INSERT INTO bench_coupons (customer_id, status) VALUES (:c, 'unused');
END;
"""


def run_pgbench(base_url: str, clients: int, seconds: int, folder: Path) -> float:
    """The bare hot-row transaction (decrement the stock where it is > 0, insert the
    coupon) with ``pgbench`` on the same server: transactions per second."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from tests import pg

    bindir, why = pg.find_server_binaries()
    if bindir is None or not (bindir / "pgbench").exists():
        raise RuntimeError(f"pgbench not found: {why}")
    with psycopg.connect(base_url, autocommit=True) as con:
        con.execute("DROP TABLE IF EXISTS bench_stock, bench_coupons")
        con.execute("CREATE TABLE bench_stock (campaign text PRIMARY KEY, stock bigint)")
        con.execute("CREATE TABLE bench_coupons (coupon_id bigserial PRIMARY KEY, "
                    "customer_id bigint NOT NULL, status text NOT NULL)")
        con.execute("INSERT INTO bench_stock VALUES ('bench', 1000000000)")
    script = folder / "hot_row.sql"
    script.write_text(PGBENCH_SCRIPT, encoding="utf-8")
    info = conninfo_to_dict(base_url)
    out = subprocess.run(
        [str(bindir / "pgbench"), "-n", "-M", "prepared", "-c", str(clients), "-j",
         str(min(clients, os.cpu_count() or 2)), "-T", str(seconds), "-f", str(script),
         "-h", str(info.get("host", "127.0.0.1")), "-p", str(info.get("port", 5432)),
         "-U", str(info.get("user", "postgres")), str(info.get("dbname", "postgres"))],
        capture_output=True, text=True, check=True)
    match = re.search(r"tps = ([0-9.]+)", out.stdout)
    if match is None:
        raise RuntimeError(f"no tps in pgbench output: {out.stdout[-500:]}")
    return float(match.group(1))


def run_bare_batch(url: str, n: int) -> float:
    """The floor of a batch: one ``INSERT ... SELECT`` of ``n`` coupon rows (ids
    precomputed, no decision) into the same migrated table, and its commit; seconds."""
    db = prepare(url, 0)
    db.execute("CREATE TEMP TABLE src (customer_id BIGINT, coupon_id TEXT)")
    db.executemany("INSERT INTO src VALUES (?, ?)",
                   ((c, coupon_id_for(f"bare:{c}")) for c in range(1, n + 1)))
    now = datetime.now(UTC).replace(tzinfo=None)
    start = time.perf_counter()
    with db.bulk_cache(), db.transaction():  # the page cache the batch writes with
        db.execute(
            "INSERT INTO coupons (coupon_id, campaign, customer_id, status, template_kind, "
            "template_value, exclusive, on_failed_drawdown, channels, lease_seconds, "
            "issued_at, issue_day, valid_from, valid_until, loan_id, lease_until, version, "
            "updated_at) SELECT coupon_id, 'bench', customer_id, 'unused', "
            "'interest_free_days', '30', 1, 'void', 'APP,H5,MINI_PROGRAM', 900, ?, ?, ?, ?, "
            "NULL, NULL, 1, ? FROM src ORDER BY coupon_id", (now, now.date(), now, now, now))
    seconds = time.perf_counter() - start
    db.close()
    return seconds


@dataclass
class Figure:
    """One measured quantity over several runs."""

    label: str
    values: list[float]
    unit: str

    def cell(self) -> str:
        med = statistics.median(self.values)
        return (f"{med:,.0f} ({min(self.values):,.0f}..{max(self.values):,.0f})"
                if med >= 100 else
                f"{med:,.2f} ({min(self.values):,.2f}..{max(self.values):,.2f})")


def repeat(runs: int, fn: Callable[[], float]) -> list[float]:
    return [fn() for _ in range(runs)]


def postgres_url(explicit: str | None) -> tuple[str | None, Callable[[], None]]:
    """A PostgreSQL base URL (given, from the environment, or a throwaway local cluster)."""
    if explicit or os.environ.get("KEQUN_TEST_POSTGRES_URL"):
        return explicit or os.environ["KEQUN_TEST_POSTGRES_URL"], lambda: None
    from tests import pg

    bindir, _ = pg.find_server_binaries()
    if bindir is None:
        return None, lambda: None
    cluster = pg.start_cluster(bindir)
    return cluster.url, cluster.stop


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the report, record it unless ``--no-record``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=20_000, help="requests per single run")
    parser.add_argument("--concurrent", type=int, default=40_000,
                        help="requests per concurrent run (split over --procs)")
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=1_000_000, help="coupons per batch run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--postgres", help="PostgreSQL URL (default: local throwaway cluster)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--pg-procs", type=int, default=8,
                        help="processes (and pgbench clients) of the hot-row comparison")
    parser.add_argument("--pg-requests", type=int, default=16_000,
                        help="requests per PostgreSQL hot-row run (split over --pg-procs)")
    parser.add_argument("--pgbench-seconds", type=int, default=8)
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL figures only")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    folder = Path(tempfile.mkdtemp(prefix="kequn-bench-issuance-"))
    rows: list[tuple[str, str, Figure]] = []
    if not args.no_sqlite:
        single, bare = [], []
        for _ in range(args.runs):  # alternate, so both see the same load
            bare.append(run_bare(folder, args.single))
            single.append(run_single(fresh_sqlite(folder, "single"), args.single))
        rows.append(("sqlite", f"bare check-insert-decrement, {args.single:,} tx",
                     Figure("bare", bare, "tx/s")))
        rows.append(("sqlite", f"issue, all limits, 1 process, {args.single:,} requests",
                     Figure("single", single, "requests/s")))
        concurrent = repeat(args.runs, lambda: run_concurrent(
            fresh_sqlite(folder, "concurrent"), args.concurrent, args.procs))
        rows.append(("sqlite", f"issue, all limits, {args.procs} processes, "
                     f"{args.concurrent:,} requests", Figure("concurrent", concurrent,
                                                             "requests/s")))
        batch, bare_batch = [], []
        for _ in range(args.runs):  # alternate, so both see the same load
            bare_batch.append(run_bare_batch(fresh_sqlite(folder, "bare_batch"), args.batch))
            batch.append(run_batch(fresh_sqlite(folder, "batch"), args.batch))
        rows.append(("sqlite", f"bare INSERT ... SELECT of {args.batch:,} coupon rows (seconds)",
                     Figure("bare_batch_s", bare_batch, "s")))
        rows.append(("sqlite", f"batch issue of {args.batch:,} coupons (seconds)",
                     Figure("batch_s", [b[0] for b in batch], "s")))
        rows.append(("sqlite", f"batch issue of {args.batch:,} coupons (coupons/s)",
                     Figure("batch_rate", [b[1] for b in batch], "coupons/s")))
        rows.append(("sqlite", f"expiry pass over {args.batch:,} coupons, nothing due (seconds)",
                     Figure("expiry_s", [b[2] for b in batch], "s")))
    pg_note = "PostgreSQL: not measured."
    if not args.no_postgres:
        base, stop = postgres_url(args.postgres)
        try:
            if base:
                from tests.pg import fresh_schema_url

                pg_single = repeat(args.runs, lambda: run_single(
                    fresh_schema_url(base, "bench"), args.single // 4))
                rows.append(("postgresql", f"issue, all limits, 1 process, "
                             f"{args.single // 4:,} requests",
                             Figure("pg_single", pg_single, "requests/s")))
                pg_conc = repeat(args.runs, lambda: run_concurrent(
                    fresh_schema_url(base, "bench"), args.concurrent // 4, args.procs))
                rows.append(("postgresql", f"issue, all limits, {args.procs} processes, "
                             f"{args.concurrent // 4:,} requests",
                             Figure("pg_conc", pg_conc, "requests/s")))
                pgbench, kequn = [], []
                for _ in range(args.runs):  # alternate, so both see the same load
                    pgbench.append(run_pgbench(base, args.pg_procs, args.pgbench_seconds,
                                               folder))
                    kequn.append(run_concurrent(fresh_schema_url(base, "bench"),
                                                args.pg_requests, args.pg_procs))
                rows.append(("postgresql", f"bare hot-row transaction (pgbench, "
                             f"{args.pg_procs} clients, {args.pgbench_seconds} s)",
                             Figure("pgbench", pgbench, "tx/s")))
                rows.append(("postgresql", f"issue, all limits, {args.pg_procs} processes, "
                             f"{args.pg_requests:,} requests",
                             Figure("pg_hot", kequn, "requests/s")))
                ratios = [k / b for k, b in zip(kequn, pgbench, strict=True)]
                rows.append(("postgresql", f"issue / bare with {args.pg_procs} processes "
                             "(paired runs; target >= 0.80)",
                             Figure("pg_ratio", ratios, "ratio")))
                pg_note = ("PostgreSQL: " + ("the given server." if args.postgres else
                           "local throwaway cluster (tests/pg.py: fsync=off, "
                           "synchronous_commit=off), same machine."))
        finally:
            stop()
    shutil.rmtree(folder, ignore_errors=True)
    report = render(rows, args, load_before, pg_note)
    print(report)
    if not args.no_record:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(report, encoding="utf-8")
        print(f"recorded in {RESULTS}")


def render(rows: list[tuple[str, str, Figure]], args: argparse.Namespace,
           load_before: tuple[float, float, float], pg_note: str) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    cpus = os.cpu_count()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.1f}" for x in load_before)
    lines = [
        "# Coupon issuance",
        "",
        f"Measured {when} on {platform.machine()}, {cpus} CPUs, {mem:.0f} GiB RAM, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}; load average before "
        f"the runs {load}. Median of {args.runs} runs (min..max); a fresh database per run.",
        "",
        "| serving DB | what | median (min..max) | unit |",
        "|---|---|---|---|",
    ]
    lines += [f"| {db} | {what} | {fig.cell()} | {fig.unit} |" for db, what, fig in rows]
    lines += [
        "",
        "- *issue, all limits*: `Issuer.issue` per request, one transaction each: "
        "idempotency lookup, window, eligibility, stock, daily limit, per-customer limit, "
        "exclusive-stacking check, coupon row, counters.",
        "- *bare*: raw `sqlite3`, BEGIN IMMEDIATE / SELECT stock / INSERT / UPDATE / COMMIT, "
        "run alternately with the full issue in the same process.",
        "- SQLite: WAL, synchronous=NORMAL (serving/db.py), file in the system temp folder.",
        f"- {pg_note}",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
