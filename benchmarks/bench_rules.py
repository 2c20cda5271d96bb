"""Rules: a rule over a 1M-customer segment evaluated and its orders written (target < 5 s).

A synthetic warehouse holds one segment (``wake_up``) whose 1,000,000 members all entered
on the day, and the wide tag table with ``credit_limit`` for them. The rule (segment
trigger, 10% holdout, ternary on the limit: an SMS or an in-app message, templates
rendered per customer, quiet hours, caps) is compiled from a definition file like any
other and run with :func:`rules.run.run_rule` into a fresh SQLite serving database:
evaluate in DuckDB, decide, write ~1M ``rule_orders`` and ~0.9M ``touch_outbox`` rows in
one transaction. Median of 3 runs (BENCH_RUNS), each on a fresh serving database.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import time
from datetime import date
from pathlib import Path

import duckdb

from kequn.settings import REPO_ROOT
from plan import compile_project
from project.loader import load_project
from rules.run import run_rule
from serving.db import connect
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


def main() -> None:
    """Run the benchmark and write ``results/rules.md``."""
    warehouse, root = build_inputs()
    compiled = compile_project(load_project(root)).rules["bench_wake_up"]
    timings, reports = [], []
    for n in range(RUNS):
        serving = OUT / f"serving-{n}.sqlite"
        for path in OUT.glob(f"serving-{n}.sqlite*"):
            path.unlink()
        con = duckdb.connect(str(warehouse), read_only=True)
        db = connect(f"sqlite:///{serving}")
        from rules.schema import migrate

        migrate(db)
        started = time.perf_counter()
        report = run_rule(con, db, None, compiled, DAY)
        timings.append(time.perf_counter() - started)
        reports.append(report)
        db.close()
        con.close()
        print(f"run {n + 1}: {timings[-1]:.2f} s  {report.summary()}", flush=True)
    median = statistics.median(timings)
    last = reports[-1]
    text = f"""# Rules benchmark

A rule over a 1,000,000-customer segment (every member entered on the day), evaluated in
DuckDB, decided (10% holdout, ternary branch, templates rendered, quiet hours, caps) and
its orders and messages written to a fresh SQLite serving database in one transaction
(`rules.run.run_rule`, the function the `rules/<name>` asset calls). Target: < 5 s.

| runs | median | all | orders | by decision | messages |
|---|---|---|---|---|---|
| {RUNS} | **{median:.2f} s** | {", ".join(f"{t:.2f}" for t in timings)} s | \
{sum(last.decisions.values()):,} | {", ".join(f"{k} {v:,}" for k, v in last.decisions.items())} \
| {last.messages:,} |

Machine: {platform.machine()}, {platform.python_version()}, DuckDB {duckdb.__version__};
2 vCPUs shared with other jobs while measured.
"""
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "rules.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
