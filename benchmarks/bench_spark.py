"""Benchmark: the daily tag and segment build on DuckDB and on Spark local[2], side by side.

Both engines run the same compiled plan on the same generated warehouse (exported to the
lake as Parquet for Spark): every atomic tag group, the wide table, each tag's
distribution, every segment and its history row for one day, what the daily Dagster build
runs (``app.engines.build_day_duckdb`` / ``build_day_spark``; the Dagster and check
overhead is left out on both sides). Spark's
session start is timed separately. Results are then compared with the parity check, so a
fast wrong answer cannot pass.

    python -m benchmarks.bench_spark                         # 1M customers, 2 runs each
    python -m benchmarks.bench_spark --customers 100000 --runs 1 --no-record

Needs the spark extra (``make spark``) and Java 17. The warehouse is cached under
benchmarks/out/ (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import time
from datetime import UTC, date, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
RESULTS = HERE / "results" / "spark.md"
SEED = 7
END = date(2026, 6, 30)


def main() -> None:
    """Run the benchmark and (unless --no-record) append the result to results/spark.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    from app.context import KequnContext
    from app.engines import build_day_duckdb, build_day_spark, export_lake, spark_engine
    from app.parity import compare_day
    from generate import generate_warehouse
    from kequn.settings import Settings

    cached = OUT / f"spark-{args.customers}.duckdb"
    if not cached.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        generate_warehouse(cached, customers=args.customers, seed=SEED, end_date=END,
                           progress=False)
    data = OUT / f"spark-run-{args.customers}"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    shutil.copy(cached, data / "warehouse.duckdb")
    settings = Settings.from_env(
        data_dir=data, warehouse=data / "warehouse.duckdb",
        serving_url=f"sqlite:///{data / 'serving.sqlite'}", lake_dir=data / "lake",
        engine="spark", spark_driver_memory=args.driver_memory, spark_shuffle_partitions=8)
    kequn = KequnContext(settings)
    kequn.plan  # noqa: B018  (compile once, outside the timings)

    started = time.perf_counter()
    export_lake(kequn)
    export_s = time.perf_counter() - started

    duck: list[float] = []
    spark: list[float] = []
    started = time.perf_counter()
    with spark_engine(kequn, "kequn-bench") as engine:
        start_s = time.perf_counter() - started
        for _ in range(args.runs):
            t = time.perf_counter()
            build_day_duckdb(kequn, END)
            duck.append(time.perf_counter() - t)
            t = time.perf_counter()
            build_day_spark(kequn, engine, END)
            spark.append(time.perf_counter() - t)
    verdicts = compare_day(kequn, END)
    same = sum(v.same for v in verdicts)

    d, s = statistics.median(duck), statistics.median(spark)
    lines = [
        f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.customers:,} customers, "
        f"median of {args.runs}",
        "",
        f"machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python "
        f"{platform.python_version()}; Spark local[2], driver memory {args.driver_memory}, "
        "8 shuffle partitions",
        "",
        "| step | DuckDB | Spark local[2] | Spark / DuckDB |",
        "|---|---|---|---|",
        f"| daily build: {len(kequn.plan.tags.groups)} tag groups, wide table, "
        f"distributions, {len(kequn.plan.segments)} segments with history "
        f"| {d:.1f} s | {s:.1f} s | {s / d:.1f}x |",
        f"| Spark session start (once per run) | - | {start_s:.1f} s | |",
        f"| raw tables exported to the lake (Parquet, DuckDB COPY) | {export_s:.1f} s | | |",
        "",
        f"all runs: DuckDB {', '.join(f'{x:.1f}' for x in duck)} s; Spark "
        f"{', '.join(f'{x:.1f}' for x in spark)} s. Parity: {same} of {len(verdicts)} "
        "definitions identical.",
        "",
    ]
    print("\n".join(lines))
    if not args.no_record:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a") as out:
            out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
