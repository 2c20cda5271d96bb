"""`kequn demo` end to end on a small warehouse: generate, build two days, summarise."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest
from typer.testing import CliRunner

from assets.common import first_partition_day
from cli.main import app
from dagster_project.definitions import build_defs
from kequn.settings import Settings


@pytest.mark.slow
def test_demo_builds_every_area_through_dagster(isolated_data: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--customers", "3000", "--seed", "7"])
    assert result.exit_code == 0, result.output
    for expected in ("Tags", "credit_granted", "overdue_days", "Segments", "wake_up",
                     "Syncs to coupon_eligibility", "applied", "Coupons", "wake_up_30d",
                     "Rule orders", "drawdown_repayment_coupon", "wake_up_touch",
                     "Touch outbox"):
        assert expected in result.output
    for expected in ("Coupon economics", "launched -> live", "trial: 10,000.00 at 18%",
                     "ledger drawdown_rate_discount: booked"):
        assert expected in result.output
    with duckdb.connect(str(isolated_data / "warehouse.duckdb"), read_only=True) as con:
        days = con.execute(
            "SELECT count(DISTINCT as_of), count(*) FROM tags.customer_tags").fetchone()
        assert days[0] == 2 and days[1] > 0
        customers = con.execute("SELECT count(*) FROM raw.customers").fetchone()[0]
        assert customers == 3000
    runs = list((isolated_data / "dagster_home").glob("storage/*"))
    assert runs, "the runs were not recorded in DAGSTER_HOME"
    # Partitions start at the demo's first built day, which the UI reads back.
    with duckdb.connect(str(isolated_data / "warehouse.duckdb"), read_only=True) as con:
        first = con.execute("SELECT min(as_of) FROM tags.customer_tags").fetchone()[0]
    assert Settings().first_day == first
    assert first_partition_day(build_defs().resolve_job_def("daily_build").partitions_def) \
        == first
    instance = dg.DagsterInstance.get()
    runs = instance.get_runs()
    assert runs and {r.job_name for r in runs} <= {"materialize", "__ASSET_JOB"}, \
        {r.job_name for r in runs}
