"""Rules: a rule over a 1M-customer segment evaluated and its orders written (target < 5 s).

A synthetic warehouse holds one segment (``wake_up``) whose 1,000,000 members all entered
on the day, and the wide tag table with ``credit_limit`` for them. The rule (segment
trigger, 10% holdout, ternary on the limit: an SMS or an in-app message, templates
rendered per customer, quiet hours, caps) is compiled from a definition file like any
other and run with :func:`rules.run.run_rule` into a fresh SQLite serving database:
evaluate in DuckDB, decide, write ~1M orders and ~0.9M ``touch_outbox`` rows in
one transaction. Median of 3 runs (BENCH_RUNS), each on a fresh serving database, wall
and process CPU time, with each phase and a bare floor for the same rows (see
``floor``) so the ratio to merely writing those rows is visible.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import sqlite3
import statistics
import time
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from kequn.settings import REPO_ROOT
from plan import compile_project
from project.loader import load_project
from rules.run import run_rule
from rules.schema import migrate
from serving.db import BULK_CACHE_KIB, connect
from warehouse.db import connect as connect_warehouse

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "rules"
DAY = date(2026, 3, 10)
MEMBERS = 1_000_000
RUNS = int(os.environ.get("BENCH_RUNS", "3"))

RULE = """\
RULE (
  name bench_wake_up,
  owner 'team:growth',
  trigger segment wake_up,
  holdout 10%,
  templates (
    sms '【客群】您有{credit_limit}元额度待使用，30天免息券已到账',
    app '您的额度{credit_limit}元已就绪，客户{customer_id}',
  ),
);
credit_limit >= 10000 ? touch sms sms at event +1d 10:00 : touch app_message app
"""


def build_inputs() -> tuple[Path, Path]:
    """The synthetic warehouse and a project (the repository's plus the bench rule)."""
    OUT.mkdir(parents=True, exist_ok=True)
    warehouse = OUT / "warehouse.duckdb"
    if not warehouse.exists():
        con = connect_warehouse(warehouse)
        con.execute("CREATE TABLE tags.customer_tags AS SELECT CAST(? AS DATE) AS as_of, "
                    "range AS customer_id, CAST((range * 7919) % 50000 AS DECIMAL(18, 4)) "
                    "AS credit_limit FROM range(1, ?)", [DAY, MEMBERS + 1])
        con.execute("INSERT INTO segments.members SELECT 'wake_up', CAST(? AS DATE), range "
                    "FROM range(1, ?)", [DAY, MEMBERS + 1])
        con.execute("INSERT INTO segments.materializations (segment, as_of, size, materialized_at) "
                    "VALUES ('wake_up', CAST(? AS DATE) - 1, 0, current_timestamp)", [DAY])
        con.close()
    project = OUT / "sql"
    if project.exists():
        shutil.rmtree(project)
    shutil.copytree(REPO_ROOT / "sql", project)
    (project / "rules" / "bench_wake_up.sql").write_text(RULE, encoding="utf-8")
    return warehouse, project


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (DuckDB's threads included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def floor(serving: Path) -> tuple[float, ...]:
    """The bare floor for the same rows: every stored order (``rule_order_rows``) and
    ``touch_outbox`` row
    just written, inserted again into a fresh SQLite file (same pragmas) by one
    ``executemany`` per table into tables without constraints or indexes, in one
    transaction; then the same rows copied by ``INSERT ... SELECT`` (no Python at all);
    then :func:`keyed_copy`. Returns (executemany wall, cpu, insert-select wall, cpu,
    keyed copy wall, cpu)."""
    with sqlite3.connect(serving) as src:
        orders = src.execute("SELECT * FROM rule_order_rows").fetchall()
        messages = src.execute("SELECT * FROM touch_outbox").fetchall()
    target = OUT / "floor.sqlite"
    for path in OUT.glob("floor.sqlite*"):
        path.unlink()
    con = sqlite3.connect(target, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    con.execute("PRAGMA cache_size = -262144")
    for table, rows in (("o", orders), ("m", messages)):
        con.execute(f"CREATE TABLE {table} ({', '.join(f'c{i}' for i in range(len(rows[0])))})")
        con.execute(f"CREATE TABLE {table}2 AS SELECT * FROM {table} WHERE 0")
    started, cpu = time.perf_counter(), cpu_seconds()
    con.execute("BEGIN IMMEDIATE")
    for table, rows in (("o", orders), ("m", messages)):
        con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' for _ in rows[0])})", rows)
    con.execute("COMMIT")
    many = (time.perf_counter() - started, cpu_seconds() - cpu)
    started, cpu = time.perf_counter(), cpu_seconds()
    con.execute("BEGIN IMMEDIATE")
    for table in ("o", "m"):
        con.execute(f"INSERT INTO {table}2 SELECT * FROM {table}")
    con.execute("COMMIT")
    copy = (time.perf_counter() - started, cpu_seconds() - cpu)
    con.close()
    for path in OUT.glob("floor.sqlite*"):
        path.unlink()
    return (*many, *copy, *keyed_copy(serving))


RUN_COLUMNS = ("run_id, rule, version_hash, as_of, created_at, first_order_id, "
               "last_order_id")
ORDER_COLUMNS = ("order_id, run_id, rule, customer_id, event_key, decision, actions, branch, "
                 "pending")
OUTBOX_COLUMNS = ("message_id, order_id, action_no, rule, channel, customer_id, text, send_at, "
                  "send_day, state, attempts")


def keyed_copy(serving: Path) -> tuple[float, float]:
    """The floor with the data contract's keys: the very same rows copied by one
    ``INSERT ... SELECT`` per table from the (attached) serving file into a fresh serving
    database with the rules schema (its unique key and indexes), in write order, with
    the write path's page cache, commit included: what any write of these rows into
    this schema costs without evaluating, deciding or staging. Returns (wall, cpu)."""
    target = OUT / "floor-keyed.sqlite"
    for path in OUT.glob("floor-keyed.sqlite*"):
        path.unlink()
    db = connect(f"sqlite:///{target}")
    migrate(db)
    con = db.raw
    con.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
    con.execute("ATTACH DATABASE ? AS src", (str(serving),))
    started, cpu = time.perf_counter(), cpu_seconds()
    con.execute("BEGIN IMMEDIATE")
    con.execute(f"INSERT INTO rule_runs ({RUN_COLUMNS}) SELECT {RUN_COLUMNS} "
                "FROM src.rule_runs ORDER BY run_id")
    con.execute(f"INSERT INTO rule_order_rows ({ORDER_COLUMNS}) SELECT {ORDER_COLUMNS} "
                "FROM src.rule_order_rows ORDER BY order_id")
    con.execute(f"INSERT INTO touch_outbox ({OUTBOX_COLUMNS}) SELECT {OUTBOX_COLUMNS} "
                "FROM src.touch_outbox ORDER BY rowid")
    con.execute("COMMIT")
    keyed = (time.perf_counter() - started, cpu_seconds() - cpu)
    db.close()
    for path in OUT.glob("floor-keyed.sqlite*"):
        path.unlink()
    return keyed


def main() -> None:
    """Run the benchmark and write ``results/rules.md`` (its History section is kept)."""
    warehouse, root = build_inputs()
    compiled = compile_project(load_project(root)).rules["bench_wake_up"]
    runs = []
    for n in range(RUNS):
        serving = OUT / f"serving-{n}.sqlite"
        for path in OUT.glob(f"serving-{n}.sqlite*"):
            path.unlink()
        con = duckdb.connect(str(warehouse), read_only=True)
        db = connect(f"sqlite:///{serving}")
        migrate(db)
        load = os.getloadavg()[0]
        started, cpu = time.perf_counter(), cpu_seconds()
        report = run_rule(con, db, None, compiled, DAY)
        wall, used = time.perf_counter() - started, cpu_seconds() - cpu
        db.close()
        con.close()
        bare = floor(serving)
        runs.append({"wall": wall, "cpu": used, "report": report, "floor": bare,
                     "load": (load + os.getloadavg()[0]) / 2})
        phases = ", ".join(f"{k} {v:.2f}" for k, v in report.phases.items())
        print(f"run {n + 1}: {wall:.2f} s wall, {used:.2f} s CPU ({phases}); floor "
              f"executemany {bare[0]:.2f} s ({bare[1]:.2f} CPU), INSERT ... SELECT "
              f"{bare[2]:.2f} s ({bare[3]:.2f} CPU), with the keys {bare[4]:.2f} s "
              f"({bare[5]:.2f} CPU); load {runs[-1]['load']:.1f}  "
              f"{report.summary()}", flush=True)
        for path in OUT.glob(f"serving-{n}.sqlite*"):
            path.unlink()
    write_results(runs)


def write_results(runs: list[dict]) -> None:
    """``results/rules.md``: this measurement on top, the kept History below."""
    median = statistics.median(r["wall"] for r in runs)
    median_cpu = statistics.median(r["cpu"] for r in runs)
    last = runs[-1]["report"]
    rows = "\n".join(
        f"| {i} | {r['wall']:.2f} | {r['cpu']:.2f} | "
        + " | ".join(f"{r['report'].phases.get(k, 0):.2f}" for k in ("evaluate", "decide", "write"))
        + f" | {r['floor'][0]:.2f} / {r['floor'][1]:.2f} | {r['floor'][2]:.2f} / "
        f"{r['floor'][3]:.2f} | {r['floor'][4]:.2f} / {r['floor'][5]:.2f} | {r['load']:.1f} |"
        for i, r in enumerate(runs, start=1))
    results = HERE / "results" / "rules.md"
    history = ""
    if results.exists() and "\n## History\n" in results.read_text(encoding="utf-8"):
        history = results.read_text(encoding="utf-8").split("\n## History\n", 1)[1]
    text = f"""# Rules benchmark

A rule over a 1,000,000-customer segment (every member entered on the day), evaluated in
DuckDB, decided (10% holdout, ternary branch, templates rendered, quiet hours, caps) and
its orders and messages written to a fresh SQLite serving database in one transaction
(`rules.run.run_rule`, the function the `rules/<name>` asset calls). Target: < 5 s.

Median of {len(runs)}: **{median:.2f} s wall, {median_cpu:.2f} s CPU** (user + system of the
process); {sum(last.decisions.values()):,} orders \
({", ".join(f"{k} {v:,}" for k, v in last.decisions.items())}), {last.messages:,} messages.

Phases are wall seconds of `run_rule` (`evaluate`: the DuckDB query; `decide`: reading
what is decided and deciding; `write`: staging, inserts and commit). The floor writes the
very same rows (all columns, as stored) again into a fresh SQLite file with the same
pragmas but no constraint or index: one `executemany` per table ("executemany"), then an
`INSERT ... SELECT` of them ("copy", no Python per row); and copies them by one
`INSERT ... SELECT` per table from the serving file into a fresh serving database with
the rules schema, i.e. the data contract's unique key and the indexes the readers use
("copy with keys", commit included: the least any write of these rows into this schema
costs); wall / CPU seconds. Load: the 1-minute load average during the run.

| run | wall s | CPU s | evaluate | decide | write | floor: executemany | floor: copy \
| floor: copy with keys | load |
|---|---|---|---|---|---|---|---|---|---|
{rows}

Machine: {platform.machine()}, {os.cpu_count()} vCPUs shared with other jobs, Python \
{platform.python_version()}, SQLite {sqlite3.sqlite_version}, DuckDB {duckdb.__version__}; \
{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.

## History
{history or chr(10)}"""
    results.parent.mkdir(exist_ok=True)
    results.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
