"""The same Dagster assets on engine spark: lake partitions, the same checks, the sync."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from rich.console import Console

from app.context import KequnContext
from app.engines import export_lake
from app.segment_history import read_history
from cli.summary import print_summary
from dagster_project.runner import materialize_days
from kequn.lake import Lake, has_parquet
from kequn.tables import CATALOG, DISTRIBUTION
from spark_engine.engine import SparkEngine
from tests.spark_engine.conftest import DAY2
from warehouse.db import table_exists

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark")]


def test_daily_build_and_sync_on_spark(spark, kequn: KequnContext) -> None:
    export_lake(kequn)
    runs = materialize_days([DAY2], kequn=kequn, select=(
        "key:tags/* or key:segments/* or key:sync/wake_up"))
    assert all(not run.checks_failed for run in runs)
    materialized = set(runs[-1].materialized)
    assert {"tags/customer_tags", "tags/catalog", "tags/drawn", "segments/wake_up",
            "segments/vip_list", "segments/repeat_big_borrowers", "segments/wake_up_campaign",
            "sync/wake_up"} <= materialized

    lake = Lake(kequn.settings.lake_dir)
    for day in (DAY2,):
        assert has_parquet(lake.wide_partition(day))
        assert has_parquet(lake.day_partition(CATALOG, day))
        for name in kequn.plan.segments:
            assert has_parquet(lake.members_partition(name, day)), name
    wide = pq.ParquetDataset(str(lake.wide_partition(DAY2))).read()
    assert set(kequn.plan.tags.tags) <= set(wide.column_names)

    # nothing was computed in the DuckDB warehouse: it has no wide table at all; the day's
    # small facts are published there (catalog, distributions, segment history), the
    # distributions and the catalog also kept in the lake
    distribution = pq.ParquetDataset(str(lake.day_partition(DISTRIBUTION, DAY2))).read()
    sizes = {name: pq.ParquetDataset(str(lake.members_partition(name, DAY2))).read().num_rows
             for name in kequn.plan.segments}
    with kequn.connect_warehouse(read_only=True) as con:
        assert not table_exists(con, "tags", "customer_tags")
        published = con.execute("SELECT name, rank, bucket, customers FROM tags.distribution "
                                "WHERE as_of = ? ORDER BY ALL", [DAY2]).fetchall()
        catalog = con.execute("SELECT count(*) FROM tags.catalog WHERE as_of = ?",
                              [DAY2]).fetchone()[0]
        history = {name: read_history(con, name) for name in kequn.plan.segments}
    assert published == sorted(tuple(r.values()) for r in distribution.select(
        ["name", "rank", "bucket", "customers"]).to_pylist())
    assert {name for name, *_ in published} == set(kequn.plan.tags.tags)
    assert catalog == len(kequn.plan.tags.tags)
    assert {name: [(r.as_of, r.size, r.entered, r.previous_day) for r in rows]
            for name, rows in history.items()} == {  # the first built day: nothing entered
        name: [(DAY2, size, 0, None)] for name, size in sizes.items()}
    # the demo's summary shows the same sections as on DuckDB
    console = Console(record=True, width=200)
    print_summary(kequn, DAY2, console)
    text = console.export_text()
    assert "Tags" in text and "drawn" in text and "%" in text
    for name, size in sizes.items():
        assert f"{name}" in text and f"{size:,}" in text
    # the sync read the lake's snapshot into coupon_eligibility
    members = set(pq.ParquetDataset(str(lake.members_partition("wake_up", DAY2))).read()
                  .column("customer_id").to_pylist())
    assert members
    db = kequn.connect_serving()
    try:
        synced = {r[0] for r in db.execute(
            "SELECT customer_id FROM coupon_eligibility WHERE segment = 'wake_up'").fetchall()}
    finally:
        db.close()
    assert synced == members

    # re-running a day replaces its partitions whole (idempotent)
    before = sorted(p.name for p in lake.wide_partition(DAY2).iterdir())
    SparkEngine(spark, lake, kequn.plan.tags).build_customer_tags(kequn.plan.tags, DAY2)
    after = sorted(p.name for p in lake.wide_partition(DAY2).iterdir())
    assert len(after) == len(before)
    assert not [p for p in lake.wide_partition(DAY2).parent.iterdir()
                if p.name.startswith((".tmp-", ".old-"))]


def test_rules_read_the_tags_spark_wrote(spark, kequn: KequnContext) -> None:
    """A rule on engine spark evaluates over the lake's wide table (staged for its day)."""
    export_lake(kequn)
    runs = materialize_days([DAY2], kequn=kequn, select=(
        "key:tags/* or key:rules/drawdown_repayment_coupon"))
    assert "rules/drawdown_repayment_coupon" in runs[-1].materialized
    with kequn.connect_warehouse(read_only=True) as con:
        staged = con.execute("SELECT DISTINCT as_of FROM tags.customer_tags").fetchall()
        loans = con.execute(
            "SELECT count(*) FROM raw.loans WHERE CAST(disbursed_at AS DATE) = ?",
            [DAY2]).fetchone()[0]
    assert staged == [(DAY2,)]
    db = kequn.connect_serving()
    try:
        orders = db.execute("SELECT count(*) FROM rule_orders WHERE rule = "
                            "'drawdown_repayment_coupon' AND as_of = ?",
                            (DAY2.isoformat(),)).fetchone()[0]
    finally:
        db.close()
    assert orders == loans > 0
