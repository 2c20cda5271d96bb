"""The scheduled flow runs by itself: 02:00 build, each segment's sync, then issuance.

Every schedule and sensor ticks here as the daemon would tick it (nothing switched on by
hand: they all default to RUNNING), and each run request is executed against one
persistent instance, the way the daemon's run launcher would.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from app.context import KequnContext
from assets.issuance import ISSUANCE_JOB, ISSUANCE_SENSOR
from dagster_project.definitions import build_defs
from dagster_project.runner import dagster_instance, generate_demo_warehouse
from tests.approvals import make_live_at

DAY = date(2026, 3, 31)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def _execute(defs: dg.Definitions, job_name: str, request: dg.RunRequest,
             instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(request.job_name or job_name)
    result = job.execute_in_process(
        partition_key=request.partition_key, instance=instance,
        asset_selection=list(request.asset_selection) if request.asset_selection else None,
        tags=request.tags, raise_on_error=False)
    assert result.success, f"{job.name} {request.partition_key} failed"
    return result


def _tick(defs: dg.Definitions, schedule: dg.ScheduleDefinition, at: datetime,
          instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    # as the daemon does, exit the context: it enters an instance of its own
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=at,
                                   repository_def=defs.get_repository_def()) as context:
        return list(schedule.evaluate_tick(context).run_requests or [])


def _sense(defs: dg.Definitions, sensor: dg.SensorDefinition, instance: dg.DagsterInstance,
           cursor: str | None = None) -> dg.SensorExecutionData:
    with dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor) as context:
        return sensor.evaluate_tick(context)


@pytest.mark.slow
def test_build_sync_and_issuance_follow_each_other_without_anyone_switching_them_on() -> None:
    kequn = KequnContext()
    instance = dagster_instance(kequn.settings)  # persistent: schedules read what was built
    generate_demo_warehouse(customers=2000, seed=5, end_date=DAY, kequn=kequn,
                            instance=instance)
    make_live_at(kequn.settings.serving_url, kequn.project.campaigns)  # only live ones issue
    defs = build_defs(kequn)
    automations = [*defs.schedules, *defs.sensors]  # type: ignore[misc]
    assert all(a.default_status.value == "RUNNING" for a in automations), [
        a.name for a in automations if a.default_status.value != "RUNNING"]

    next_day = DAY + timedelta(days=1)
    sensor = defs.resolve_sensor_def(ISSUANCE_SENSOR)
    # Before anything is synced the issuance sensor has nothing to do.
    before = _sense(defs, sensor, instance)
    assert not before.run_requests

    # 02:00 the next morning: the daily build for DAY.
    build = defs.resolve_schedule_def("daily_build_schedule")
    requests = _tick(defs, build, datetime.combine(next_day, datetime.min.time(), SHANGHAI)
                     .replace(hour=2), instance)
    assert [r.partition_key for r in requests] == [DAY.isoformat()]
    _execute(defs, build.job_name, requests[0], instance)

    # Each segment's sync at its own time that day syncs DAY.
    sync_schedules = [s for s in defs.schedules if s.name.startswith("sync_")]  # type: ignore[union-attr]
    assert {s.name for s in sync_schedules} >= {"sync_wake_up_schedule"}
    for schedule in sync_schedules:
        requests = _tick(defs, schedule, datetime.combine(next_day, datetime.min.time(), SHANGHAI)
                         .replace(hour=23), instance)
        assert [r.partition_key for r in requests] == [DAY.isoformat()], schedule.name
        _execute(defs, schedule.job_name, requests[0], instance)

    # The issuance sensor sees the sync and asks for each campaign of that segment.
    tick = _sense(defs, sensor, instance)
    requests = list(tick.run_requests or [])
    synced = {s.name.removeprefix("sync_").removesuffix("_schedule") for s in sync_schedules}
    campaigns = [c.name for c in kequn.project.campaigns.values()
                 if c.target_segment in synced and c.batch_offer]  # others: rules issue
    assert "wake_up_30d" in campaigns
    assert sorted((r.run_key, r.partition_key) for r in requests) == sorted(
        (f"issue_{name}_{DAY}", DAY.isoformat()) for name in campaigns)
    for request in requests:
        _execute(defs, ISSUANCE_JOB, request, instance)
    with kequn.issuer() as issuer:
        issued = issuer.db.scalar("SELECT count(*) FROM coupons WHERE campaign = 'wake_up_30d'")
        eligible = issuer.db.scalar(
            "SELECT count(*) FROM coupon_eligibility WHERE segment = 'wake_up'")
    assert eligible > 0 and issued == eligible

    # The next tick starts after what it has seen: nothing is requested twice.
    again = _sense(defs, sensor, instance, tick.cursor)
    assert not again.run_requests
