"""The ``issuance/<campaign>`` batch assets and the expiry job (assets/issuance.py)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from app.context import KequnContext
from assets.issuance import EXPIRY_JOB, build_definitions, expiry_job, issuance_key
from kequn.settings import Settings
from serving.db import ServingDB
from tests.approvals import make_live
from tests.issuance.conftest import make_eligible

CAMPAIGN = """\
name: spring
owner: team:growth
type: credit
target_segment: granted
window_start: 2020-01-01
window_end: 2035-12-31
interest_free_days: 7
validity_starts_after_days: 0
validity_days: 1
total_stock: 4
daily_limit: 3
"""
SEGMENT = """\
SEGMENT (name granted, kind sql, owner 'team:growth', sync on);
SELECT customer_id FROM raw.customers
"""


@pytest.fixture
def kequn(tmp_path: Path, serving_url: str) -> KequnContext:
    project = tmp_path / "project"
    (project / "campaigns").mkdir(parents=True)
    (project / "campaigns" / "spring.yaml").write_text(CAMPAIGN)
    (project / "segments").mkdir()
    (project / "segments" / "granted.sql").write_text(SEGMENT)
    return KequnContext(Settings(warehouse=tmp_path / "w.duckdb", serving_url=serving_url,
                                 project_dir=project, data_dir=tmp_path / "data"))


def test_definitions_shape(kequn: KequnContext) -> None:
    defs = dg.Definitions.merge(build_definitions(kequn), dg.Definitions(
        resources={"kequn": kequn}))
    spec = next(s for s in defs.resolve_all_asset_specs() if s.key == issuance_key("spring"))
    assert spec.key == issuance_key("spring")
    assert [d.asset_key for d in spec.deps] == [dg.AssetKey(["sync", "granted"])]
    assert spec.owners == ["team:growth"] and spec.group_name == "issuance"
    assert spec.partitions_def is not None
    schedule = defs.resolve_schedule_def(f"{EXPIRY_JOB}_schedule")
    assert schedule.cron_schedule == "*/10 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.execution_timezone == "Asia/Shanghai"


def test_batch_asset_issues_once_per_day(kequn: KequnContext, db: ServingDB) -> None:
    make_eligible(db, "granted", range(1, 6))
    make_eligible(db, "other", [99])
    asset = build_definitions(kequn).assets[0]  # type: ignore[index]
    resources = {"kequn": kequn}
    instance = dg.DagsterInstance.ephemeral()

    def run(day: str) -> dict[str, object]:
        result = dg.materialize([asset], resources=resources, partition_key=day,
                                instance=instance)
        assert result.success
        event = result.asset_materializations_for_node(asset.node_def.name)[0]
        return {k: v.value for k, v in event.metadata.items()}

    # Not approved yet: the run succeeds, says why nothing was issued, and records nothing.
    early = run("2026-03-10")
    assert (early["eligible"], early["issued"], early["refused/not_live"]) == (5, 0, 5)
    assert str(early["not_live"]).startswith("not live: 5 requests refused (the campaign "
                                             "is draft (submit, approve and launch it))")
    assert db.scalar("SELECT count(*) FROM issuance_requests") == 0
    make_live(db, kequn.project.campaign("spring"))
    first = run("2026-03-10")  # the same day again, now live: issues
    assert (first["eligible"], first["issued"], first["refused/daily_limit"]) == (5, 3, 2)
    assert "not_live" not in first
    again = run("2026-03-10")
    assert (again["issued"], again["already_issued"], again["refused/daily_limit"]) == (0, 3, 2)
    assert db.scalar("SELECT count(*) FROM coupons") == 3
    # A new partition is a new offer (new keys), but the daily limit counts coupons by the
    # Asia/Shanghai day they are issued on: today's 3 are already out.
    second = run("2026-03-11")
    assert (second["issued"], second["refused/daily_limit"]) == (0, 5)
    assert db.scalar("SELECT count(*) FROM coupons") == 3


def test_expiry_job_runs(kequn: KequnContext, db: ServingDB) -> None:
    result = expiry_job.execute_in_process(
        resources={"kequn": kequn},
        instance=dg.DagsterInstance.ephemeral())
    assert result.success
