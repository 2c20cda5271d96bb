"""Benchmark of segment materialisation and file import at 10M customers.

1. A 5-term rule segment, materialised exactly as the Dagster asset does it
   (``segments.build.build_segment``: open, check inputs, replace the day's members in
   one transaction, log, compute stats), against the bare DuckDB filter over the wide
   table (``count(*)`` and ``CREATE TABLE AS``) in the same process, alternating.
2. A 1M-row phone file (mixed formats: +86, spaces, dashes, full-width digits)
   imported and matched with ``segments.file_import.import_file`` against a bare DuckDB
   read_csv + normalise + sha256 + join.

The wide table: if the tag benchmark left a 10M ``tags.customer_tags`` under
benchmarks/out/, it is used; otherwise a synthetic wide table of the same shape (one
column per tag of sql/tags with its value type, one day) is generated, and the result
says so.

    python -m benchmarks.bench_segments                  # 10M customers, 5 runs
    python -m benchmarks.bench_segments --customers 200000 --runs 2 --no-record
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np

from kequn.settings import REPO_ROOT

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
RESULTS = HERE / "results" / "segments.md"
DAY = date(2026, 6, 30)
SEED = 7
TAGS_BENCH = OUT / "tags_{customers}_seed7_2026-06-30.duckdb"
"""The tag benchmark's generated warehouse (raw tables + tags.customer_tags for DAY)."""
RULE = ("granted_not_drawn AND NOT overdue AND registered_days >= 30 "
        "AND city IN ('Shanghai', 'Beijing', 'Chengdu') AND credit_limit >= 5000")
CITIES = ["Shanghai", "Beijing", "Chengdu", "Wuhan", "Xi'an", "Hangzhou", "Shenzhen",
          "Nanjing", "Suzhou", "Chongqing"]


def _tag_columns() -> list[tuple[str, str]]:
    from project.loader import load_project

    project = load_project(REPO_ROOT / "sql")
    return sorted((name, str(tag.value_type)) for name, tag in project.tags.items())


def _column_sql(name: str, value_type: str, i: int) -> str:
    """A random column of the tag's type (fixed SQL; no user input)."""
    if name == "city":
        cities = ", ".join("'" + c.replace("'", "''") + "'" for c in CITIES)
        return f"[{cities}][1 + CAST(floor(random() * {len(CITIES)}) AS INTEGER)] AS city"
    if name == "registered_days":
        return "CAST(floor(random() * 1000) AS INTEGER) AS registered_days"
    if name == "credit_limit":
        return "CAST(round(random() * 50000, 2) AS DECIMAL(12,2)) AS credit_limit"
    share = 0.1 + (i % 7) / 10
    return {
        "boolean": f"random() < {share:.2f} AS {name}",
        "integer": f"CASE WHEN random() < {share:.2f} THEN CAST(floor(random() * 100) AS "
                   f"INTEGER) END AS {name}",
        "decimal": f"CAST(round(random() * 1000, 2) AS DECIMAL(12,2)) AS {name}",
        "string": f"CASE WHEN random() < 0.5 THEN 'A' ELSE 'B' END AS {name}",
        "date": f"DATE '2025-01-01' + CAST(floor(random() * 500) AS INTEGER) AS {name}",
    }[value_type]


def synthetic_warehouse(path: Path, customers: int) -> None:
    """raw.customers (synthetic phones, hashed) and a one-day synthetic wide table."""
    con = duckdb.connect(str(path))
    con.execute("SET enable_progress_bar = false")
    con.execute("CREATE SCHEMA IF NOT EXISTS raw; CREATE SCHEMA IF NOT EXISTS tags; "
                "CREATE SCHEMA IF NOT EXISTS segments")
    con.execute(f"""CREATE OR REPLACE TABLE raw.customers AS
        SELECT range AS customer_id, sha256(CAST(13000000000 + range * 7 AS VARCHAR)) AS phone_hash
        FROM range(1, {customers + 1})""")
    columns = ",\n".join(_column_sql(n, t, i) for i, (n, t) in enumerate(_tag_columns()))
    con.execute("SELECT setseed(0.7)")
    con.execute(f"""CREATE OR REPLACE TABLE tags.customer_tags AS
        SELECT DATE '{DAY.isoformat()}' AS as_of, customer_id, {columns}
        FROM raw.customers ORDER BY customer_id""")
    con.close()


def phone_file(path: Path, rows: int, customers: int, real: bool) -> None:
    """``rows`` phones of distinct existing customers in mixed formats (vectorised)."""
    from generate.phones import phone_numbers_for

    rng = np.random.default_rng(11)
    ids = rng.choice(np.arange(1, customers + 1), size=min(rows, customers), replace=False)
    numbers = phone_numbers_for(ids, SEED) if real else 13000000000 + ids * 7
    phones = numbers.astype(str)
    kind = np.arange(rows) % 4
    out = phones.astype(object)
    plus = kind == 1
    out[plus] = np.char.add("+86 ", phones[plus])
    dash = kind == 2
    out[dash] = np.char.add(np.char.add(np.char.add(np.char.add(
        [p[:3] for p in phones[dash]], "-"), [p[3:7] for p in phones[dash]]), "-"),
        [p[7:] for p in phones[dash]])
    full = kind == 3
    table = str.maketrans("0123456789", "０１２３４５６７８９")
    out[full] = [p.translate(table) for p in phones[full]]
    path.write_text("手机号\n" + "\n".join(out.tolist()) + "\n", encoding="utf-8")


def _has_wide_table(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return False  # still being written
    try:
        row = con.execute("SELECT count(*) FROM information_schema.tables WHERE "
                          "table_schema = 'tags' AND table_name = 'customer_tags'").fetchone()
        if not row[0]:
            return False
        return bool(con.execute("SELECT count(*) FROM tags.customer_tags WHERE as_of = ?",
                                [DAY]).fetchone()[0])
    finally:
        con.close()


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and (unless --no-record) write benchmarks/results/segments.md."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=10_000_000)
    parser.add_argument("--file-rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)

    from plan.segments import compile_segment
    from project.loader import load_project
    from segments.build import build_segment
    from segments.imports import import_file
    from segments.materialize import write_members
    from warehouse.db import Warehouse, connect

    OUT.mkdir(exist_ok=True)
    tags_file = Path(str(TAGS_BENCH).format(customers=args.customers))
    real = _has_wide_table(tags_file)
    if real:
        path = OUT / f"segments_real_{args.customers}.duckdb"
        if not path.exists():
            shutil.copyfile(tags_file, path)  # never write into the tag benchmark's file
        source = (f"the tag benchmark's generated warehouse ({args.customers:,} customers, "
                  f"seed {SEED}, real `tags.customer_tags` for {DAY})")
    else:
        path = OUT / f"segments_{args.customers}.duckdb"
        if not path.exists():
            t, _ = timed(lambda: synthetic_warehouse(path, args.customers))
            print(f"synthetic warehouse ({args.customers:,} customers, wide table of "
                  f"{len(_tag_columns())} tag columns) built in {t:.1f} s", flush=True)
        source = ("synthetic wide table of the same shape (one column per tag, random "
                  "values; the tag benchmark's table was not available)")
    print(f"wide table: {source}", flush=True)

    draft = OUT / "bench_rule.sql"
    draft.write_text("SEGMENT (name bench_rule, kind rule, owner 'team:bench', "
                     f"rule '{RULE.replace(chr(39), chr(39) * 2)}');\n", encoding="utf-8")
    project = load_project(REPO_ROOT / "sql", drafts=[draft])  # checked against the tags
    compiled = compile_segment(project.segment("bench_rule"))
    condition = compiled.condition.sql(dialect="duckdb")
    warehouse = Warehouse(path)

    bare_count, bare_ctas, bare_table, kequn, kequn_open = [], [], [], [], []
    size = 0
    for _ in range(args.runs):
        con = connect(path)
        con.execute("SET enable_progress_bar = false")
        t, row = timed(lambda con=con: con.execute(
            f"SELECT count(*) FROM tags.customer_tags WHERE as_of = ? AND ({condition})",
            [DAY]).fetchone())
        bare_count.append(t)
        size = row[0]
        t, _ = timed(lambda con=con: con.execute(
            "CREATE OR REPLACE TEMP TABLE bare AS SELECT customer_id FROM tags.customer_tags "
            f"WHERE as_of = ? AND ({condition})", [DAY]))
        bare_ctas.append(t)
        t, _ = timed(lambda con=con: con.execute(
            "CREATE OR REPLACE TABLE segments.bench_bare AS SELECT customer_id "
            f"FROM tags.customer_tags WHERE as_of = ? AND ({condition})", [DAY]))
        bare_table.append(t)
        con.execute("DROP TABLE segments.bench_bare")
        t, stats = timed(lambda con=con: write_members(
            con, "bench_rule_open", DAY, query=compiled.query, unique=True))
        kequn_open.append(t)
        assert stats.size == size
        con.close()
        t, result = timed(lambda: build_segment(warehouse, compiled, DAY))
        kequn.append(t)
        assert result.stats.size == size, (result.stats.size, size)
    med = statistics.median
    print(f"rule ({size:,} members of {args.customers:,}): bare count "
          f"{med(bare_count)*1000:.0f} ms, bare temp CTAS {med(bare_ctas)*1000:.0f} ms, "
          f"bare stored CTAS {med(bare_table)*1000:.0f} ms, kequn write on an open "
          f"connection {med(kequn_open)*1000:.0f} ms, kequn build {med(kequn)*1000:.0f} ms",
          flush=True)

    csv_path = OUT / f"phones_{args.file_rows}_{'real' if real else 'synthetic'}.csv"
    if not csv_path.exists():
        phone_file(csv_path, args.file_rows, args.customers, real)
    imports, bare_import = [], []
    report = None
    for i in range(max(3, args.runs // 2 + 1)):
        con = duckdb.connect(str(path))
        con.execute("SET enable_progress_bar = false")
        t, _ = timed(lambda con=con: con.execute(f"""
            WITH f AS (SELECT * FROM read_csv('{csv_path}', all_varchar = true, header = true)),
            n AS (SELECT regexp_replace(translate(COLUMNS(*), '０１２３４５６７８９',
                    '0123456789'), '[\\s\\-]|^\\+86', '', 'g') AS p FROM f)
            SELECT count(*) FROM n JOIN raw.customers c ON c.phone_hash = sha256(n.p)
        """).fetchone())
        bare_import.append(t)
        con.close()
        con = connect(path)
        name = f"bench_import_{uuid.uuid4().hex[:8]}_{i}"
        t, report = timed(lambda con=con, name=name: import_file(con, name, csv_path, "phone"))
        imports.append(t)
        con.close()
    assert report is not None
    print(f"import {args.file_rows:,} phones: kequn {med(imports):.2f} s "
          f"(bare DuckDB read+hash+join {med(bare_import):.2f} s); {report.summary()}",
          flush=True)

    if args.no_record:
        return
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(f"""# Segments benchmark

Recorded {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} ({os.cpu_count()} cores,
shared with other jobs), `python -m benchmarks.bench_segments --customers {args.customers}
--runs {args.runs}`. Medians of {args.runs} alternating runs (import: {len(imports)} runs).
Wide table: {source}.

## 5-term rule segment at {args.customers:,} customers

Rule: `{RULE}` ({size:,} members).

| what | median |
|---|---|
| bare DuckDB `count(*)` filter over the wide table | {med(bare_count)*1000:.0f} ms |
| bare DuckDB `CREATE TEMP TABLE AS` of the filter | {med(bare_ctas)*1000:.0f} ms |
| bare DuckDB `CREATE TABLE AS` (stored) of the filter | {med(bare_table)*1000:.0f} ms |
| kequn `write_members` on an open connection | {med(kequn_open)*1000:.0f} ms |
| kequn `build_segment` (what the asset runs) | {med(kequn)*1000:.0f} ms |
| ratio kequn write / bare count | {med(kequn_open)/med(bare_count):.2f}x |
| ratio kequn write / bare stored CTAS | {med(kequn_open)/med(bare_table):.2f}x |
| ratio kequn build / bare count | {med(kequn)/med(bare_count):.2f}x |

`write_members` replaces the day's rows, logs the materialisation, computes size,
added/removed and a sample, on a connection that is already open (like the bare rows).
`build_segment` also opens the warehouse, checks the wide table has the day, and closes
it (closing checkpoints the write into the file).

## {args.file_rows:,}-row phone file import

Mixed formats (plain, `+86 `, dashes, full-width digits), every number a customer.

| what | median |
|---|---|
| bare DuckDB read_csv + normalise + sha256 + join | {med(bare_import):.2f} s |
| kequn `import_file` (all steps, below) | {med(imports):.2f} s |

`import_file`: decode, sniff the delimiter, read every value as text, normalise, hash,
dedupe, match against `raw.customers`, store in one transaction, write the report.

Result of the last import: {report.summary()}
""", encoding="utf-8")
    print(f"recorded {RESULTS}")


if __name__ == "__main__":
    main()
