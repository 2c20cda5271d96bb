"""Alerts: a blocked sync, a failed blocking check and a failed run each post one alert
with the reason and a link to the run, to a real local HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pytest

from app.context import KequnContext
from dagster_project.alerts import ALERT_SENSOR, build_alert_sensor
from dagster_project.definitions import build_defs
from dagster_project.runner import dagster_instance
from kequn.settings import Settings

DAY = "2026-03-31"
DAILY = dg.DailyPartitionsDefinition(start_date="2026-03-01", timezone="Asia/Shanghai")


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict]]]:
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", received
    finally:
        server.shutdown()
        server.server_close()


@dg.asset(key=["sync", "toy"], partitions_def=DAILY)
def blocked_sync() -> None:
    raise dg.Failure(description="sync of segment 'toy' blocked",
                     metadata={"status": "blocked", "reason": "removed 80% > 50%"})


@dg.asset(key=["segments", "toy"], partitions_def=DAILY,
          check_specs=[dg.AssetCheckSpec("size_bounds", asset=["segments", "toy"],
                                         blocking=True)])
def empty_segment() -> dg.MaterializeResult:
    return dg.MaterializeResult(check_results=[dg.AssetCheckResult(
        check_name="size_bounds", passed=False, severity=dg.AssetCheckSeverity.ERROR,
        description="size 0 outside [1, ∞]")])


@dg.asset(key=["tags", "toy"], partitions_def=DAILY)
def broken_tag() -> None:
    raise RuntimeError("Catalog Error: Table with name nowhere does not exist")


def _alert_after(asset: dg.AssetsDefinition, url: str, instance: dg.DagsterInstance) -> str:
    result = dg.materialize([asset], partition_key=DAY, instance=instance,
                            raise_on_error=False)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    failure = next(e for e in result.all_events
                   if e.event_type_value == "PIPELINE_FAILURE")
    sensor = build_alert_sensor(Settings(alert_webhook_url=url, ui_url="http://ui:3000"))
    with dg.build_run_status_sensor_context(
            sensor_name=ALERT_SENSOR, dagster_event=failure, dagster_instance=instance,
            dagster_run=run).for_run_failure() as context:
        sensor(context)
    return result.run_id


@pytest.mark.parametrize(("asset", "kind", "reason"), [
    (blocked_sync, "sync_blocked", "removed 80% > 50%"),
    (empty_segment, "check_failed", "segments/toy:size_bounds: size 0 outside [1, ∞]"),
    (broken_tag, "run_failed", "Table with name nowhere does not exist"),
])
def test_each_failure_posts_one_alert_with_reason_and_link(
        webhook, asset: dg.AssetsDefinition, kind: str, reason: str) -> None:
    url, received = webhook
    instance = dagster_instance(Settings())
    run_id = _alert_after(asset, url, instance)
    assert len(received) == 1
    alert = received[0]
    assert alert["kind"] == kind
    assert reason in alert["reason"]
    assert alert["link"] == f"http://ui:3000/runs/{run_id}"
    assert alert["business_day"] == DAY
    assert reason in alert["text"] and alert["link"] in alert["text"]


def test_without_a_webhook_the_sensor_skips_and_is_on_by_default() -> None:
    defs = build_defs(KequnContext(Settings(alert_webhook_url="")))
    sensor = defs.resolve_sensor_def(ALERT_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
