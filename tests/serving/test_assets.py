"""The ``sync/<segment>`` Dagster assets, jobs and schedules (assets/sync.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest

from app.context import KequnContext
from assets.common import DUCKDB_POOL
from assets.sync import build_definitions as build_sync_definitions
from assets.sync import business_day_for_tick, sync_key
from kequn.settings import Settings
from serving.db import connect
from sync.log import sync_log
from tests.serving.conftest import MEMBERS_DDL, eligible, set_members
from warehouse import db as wh

SYNCED = """\
SEGMENT (
  name vip,
  kind sql,
  owner 'team:growth',
  sync on,
  sync_schedule '07:30',
  max_removed_ratio 0.2,
);
SELECT customer_id FROM raw.customers
"""
DAILY_SYNCED = """\
SEGMENT (
  name daily_one,
  kind sql,
  owner 'team:risk',
  sync_schedule daily,
);
SELECT customer_id FROM raw.customers
"""
NOT_SYNCED = """\
SEGMENT (
  name quiet,
  kind sql,
  owner 'team:growth',
  min_size 5,
);
SELECT customer_id FROM raw.customers
"""


@pytest.fixture
def settings(tmp_path: Path, serving_url: str) -> Settings:
    project = tmp_path / "project"
    (project / "segments").mkdir(parents=True)
    (project / "segments" / "vip.sql").write_text(SYNCED)
    (project / "segments" / "daily_one.sql").write_text(DAILY_SYNCED)
    (project / "segments" / "quiet.sql").write_text(NOT_SYNCED)
    return Settings(warehouse=tmp_path / "warehouse.duckdb", serving_url=serving_url,
                    project_dir=project, data_dir=tmp_path / "data")


def build_definitions(settings: Settings) -> dg.Definitions:
    """The sync definitions of the project ``settings`` point at."""
    return build_sync_definitions(KequnContext(settings))


def _repo(defs: dg.Definitions, settings: Settings) -> dg.RepositoryDefinition:
    """The repository with the ``kequn`` resource bound, as dagster_project binds it."""
    resources = dg.Definitions(resources={"kequn": KequnContext(settings)})
    return dg.Definitions.merge(defs, resources).get_repository_def()


def _asset(defs: dg.Definitions, name: str) -> dg.AssetsDefinition:
    for item in defs.assets or []:
        if isinstance(item, dg.AssetsDefinition) and sync_key(name) in item.keys:
            return item
    raise AssertionError(f"no sync asset for {name}")


@pytest.mark.parametrize("serving_url", ["sqlite"], indirect=True)
def test_one_asset_job_and_schedule_per_synced_segment(settings):
    defs = build_definitions(settings)
    keys = sorted(k.to_user_string() for a in defs.assets for k in a.keys)
    assert keys == ["sync/daily_one", "sync/vip"]
    asset = _asset(defs, "vip")
    spec = next(iter(asset.specs))
    assert [d.asset_key for d in spec.deps] == [dg.AssetKey(["segments", "vip"])]
    assert spec.kinds == {"sqlite"}
    assert spec.owners == ["team:growth"]
    assert spec.group_name == "sync"
    assert asset.partitions_def is not None
    assert asset.op.pool == DUCKDB_POOL
    assert set(asset.required_resource_keys) >= {"kequn"}
    assert spec.code_version

    schedules = {s.name: s for s in defs.schedules}
    assert set(schedules) == {"sync_vip_schedule", "sync_daily_one_schedule"}
    vip = schedules["sync_vip_schedule"]
    assert (vip.cron_schedule, vip.execution_timezone) == ("30 7 * * *", "Asia/Shanghai")
    assert vip.default_status == dg.DefaultScheduleStatus.RUNNING
    assert vip.job_name == "sync_vip"
    assert schedules["sync_daily_one_schedule"].cron_schedule == "0 6 * * *"


def test_postgres_kind(tmp_path):
    settings = Settings(project_dir=tmp_path, serving_url="postgresql://u@h/db",
                        warehouse=tmp_path / "w.duckdb", data_dir=tmp_path)
    (tmp_path / "segments").mkdir()
    (tmp_path / "segments" / "vip.sql").write_text(SYNCED)
    spec = next(iter(_asset(build_definitions(settings), "vip").specs))
    assert spec.kinds == {"postgres"}


@pytest.mark.parametrize(
    ("tick_utc", "partition"),
    [
        (datetime(2024, 3, 1, 15, 59, tzinfo=UTC), "2024-02-29"),  # 23:59 on 1 March in Shanghai
        (datetime(2024, 3, 1, 16, 0, tzinfo=UTC), "2024-03-01"),  # 00:00 on 2 March
        (datetime(2024, 3, 1, 16, 1, tzinfo=UTC), "2024-03-01"),
        (datetime(2024, 3, 1, 22, 0, tzinfo=UTC), "2024-03-01"),  # the default 06:00 tick
        (datetime(2024, 12, 31, 23, 30, tzinfo=UTC), "2024-12-31"),  # 07:30 on 1 January
    ],
)
def test_schedule_tick_requests_the_previous_shanghai_day(tmp_path, tick_utc, partition):
    settings = Settings(project_dir=tmp_path, serving_url="sqlite:///x.sqlite",
                        warehouse=tmp_path / "w.duckdb", data_dir=tmp_path)
    (tmp_path / "segments").mkdir()
    (tmp_path / "segments" / "vip.sql").write_text(SYNCED)
    defs = build_definitions(settings)
    schedule = defs.schedules[0]
    with dg.build_schedule_context(scheduled_execution_time=tick_utc,
                                   repository_def=_repo(defs, settings)) as context:
        result = schedule.evaluate_tick(context)
    assert [r.partition_key for r in result.run_requests] == [partition]
    assert business_day_for_tick(tick_utc) == date.fromisoformat(partition)


def test_schedule_skips_until_the_segment_partition_is_built(tmp_path):
    settings = Settings(project_dir=tmp_path, serving_url="sqlite:///x.sqlite",
                        warehouse=tmp_path / "w.duckdb", data_dir=tmp_path)
    (tmp_path / "segments").mkdir()
    (tmp_path / "segments" / "vip.sql").write_text(SYNCED)
    defs = build_definitions(settings)
    schedule = defs.schedules[0]
    repo = _repo(defs, settings)
    tick = datetime(2024, 3, 1, 23, 30, tzinfo=UTC)  # 07:30 on 2 March in Shanghai
    with dg.instance_for_test() as instance:
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=tick,
                                       repository_def=repo) as context:
            skipped = schedule.evaluate_tick(context)
        assert not skipped.run_requests
        assert "segments/vip has not been built for 2024-03-01" in skipped.skip_message
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=["segments", "vip"], partition="2024-03-01"))
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=tick,
                                       repository_def=repo) as context:
            ran = schedule.evaluate_tick(context)
        assert [r.partition_key for r in ran.run_requests] == ["2024-03-01"]


def _materialize(asset, settings, day, run_config=None):
    return dg.materialize(
        [asset],
        resources={"kequn": KequnContext(settings)},
        partition_key=day,
        instance=dg.DagsterInstance.ephemeral(),
        run_config=run_config,
        raise_on_error=False,
    )


@pytest.mark.slow
def test_materialize_applies_reports_and_fails_visibly_when_blocked(settings):
    con = wh.connect(settings.warehouse)
    con.execute(MEMBERS_DDL)
    set_members(con, "vip", date(2024, 3, 1), range(100))
    set_members(con, "vip", date(2024, 3, 2), range(50, 120))
    con.close()
    asset = _asset(build_definitions(settings), "vip")

    first = _materialize(asset, settings, "2024-03-01")
    assert first.success
    metadata = first.asset_materializations_for_node(asset.op.name)[0].metadata
    assert metadata["status"].value == "applied"
    assert (metadata["added"].value, metadata["removed"].value) == (100, 0)
    assert metadata["duration_s"].value >= 0

    blocked = _materialize(asset, settings, "2024-03-02")
    assert not blocked.success
    failure = next(e for e in blocked.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error.message)
    assert "blocked" in message and "max_removed_ratio 20%" in message
    db = connect(settings.serving_url)
    try:
        assert sync_log(db, "vip")[0]["status"] == "blocked"
        assert eligible(db, "vip") == set(range(100))
    finally:
        db.close()

    forced = _materialize(asset, settings, "2024-03-02",
                          run_config={"ops": {asset.op.name: {"config": {"force": True}}}})
    assert forced.success
    db = connect(settings.serving_url)
    try:
        assert eligible(db, "vip") == set(range(50, 120))
    finally:
        db.close()
