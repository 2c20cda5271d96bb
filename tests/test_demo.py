"""`kequn demo` end to end on a small warehouse: generate, build two days, summarise."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from cli.main import app


@pytest.mark.slow
def test_demo_builds_every_area_through_dagster(isolated_data: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--customers", "3000", "--seed", "7"])
    assert result.exit_code == 0, result.output
    for expected in ("Tags", "credit_granted", "overdue_days", "Segments", "wake_up",
                     "Syncs to coupon_eligibility", "applied", "Coupons", "wake_up_30d",
                     "Rule orders", "drawdown_repayment_coupon", "wake_up_touch",
                     "Touch outbox"):
        assert expected in result.output
    for expected in ("Coupon economics", "launched -> live", "trial: 10000.00 at 18%",
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
