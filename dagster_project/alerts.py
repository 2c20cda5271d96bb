"""The alert sensor: every failed run of the code location becomes one webhook alert.

``kequn_alerts`` is a run failure sensor (running by default). A run fails when a sync is
blocked by its guardrails (the sync asset raises ``dagster.Failure`` with metadata
``status: blocked``), when a blocking asset check fails, or when a step fails; the alert's
``kind`` says which (``sync_blocked`` before ``check_failed`` before ``run_failed``), its
``reason`` says why (the guardrail verdict, the check's description, the error), and its
``link`` opens the run in the UI (``Settings.ui_url``). Runs started from the command
line are in the same instance, so they alert too while the daemon runs.

Without ``KEQUN_ALERT_WEBHOOK_URL`` the sensor is still defined but skips with a reason.
"""

from __future__ import annotations

import dagster as dg

from app.alerts import Alert, run_link, send_alert
from kequn.settings import Settings

ALERT_SENSOR = "kequn_alerts"
_PARTITION_TAG = "dagster/partition"


def _metadata_text(metadata: dict, key: str) -> str | None:
    value = metadata.get(key)
    if value is None:
        return None
    return str(getattr(value, "value", value))


def alert_for_run(instance: dg.DagsterInstance, run: dg.DagsterRun, ui_url: str,
                  failure_message: str = "") -> Alert:
    """The alert describing why ``run`` failed, read from its event log."""
    records = instance.all_logs(run.run_id, of_type={
        dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.ASSET_CHECK_EVALUATION})
    blocked, checks, errors = [], [], []
    assets = []
    for record in records:
        event = record.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            data = event.step_failure_data
            user = data.user_failure_data if data else None
            metadata = dict(user.metadata) if user and user.metadata else {}
            if _metadata_text(metadata, "status") == "blocked":
                blocked.append(f"{event.step_key}: "
                               f"{_metadata_text(metadata, 'reason') or user.description}")
                assets.append(event.step_key or "")
            elif data and data.error:
                error = data.error
                while error.cause is not None:  # the user's exception, not Dagster's wrapper
                    error = error.cause
                errors.append(f"{event.step_key}: {error.message.strip()}")
        else:
            evaluation = event.event_specific_data
            if evaluation is None or getattr(evaluation, "passed", True):
                continue
            if getattr(evaluation, "severity", None) != dg.AssetCheckSeverity.ERROR:
                continue
            key = evaluation.asset_key.to_user_string()
            checks.append(f"{key}:{evaluation.check_name}: {evaluation.description or 'failed'}")
            assets.append(key)
    if blocked:
        kind, reasons = "sync_blocked", blocked
    elif checks:
        kind, reasons = "check_failed", checks
    else:
        kind, reasons = "run_failed", errors or [failure_message or "the run failed"]
    day = run.tags.get(_PARTITION_TAG, "")
    title = {"sync_blocked": "sync blocked", "check_failed": "blocking check failed",
             "run_failed": "run failed"}[kind]
    title = f"{title} in {run.job_name}" + (f" for {day}" if day else "")
    return Alert(kind=kind, title=title, reason="; ".join(reasons),
                 link=run_link(ui_url, run.run_id), run_id=run.run_id, job=run.job_name,
                 business_day=day, asset=", ".join(dict.fromkeys(a for a in assets if a)))


def build_alert_sensor(settings: Settings) -> dg.SensorDefinition:
    """The run failure sensor that posts an :class:`Alert` for each failed run."""

    @dg.run_failure_sensor(
        name=ALERT_SENSOR,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Post an alert (blocked sync, failed blocking check, failed run) with "
        "the reason and a link to the run to KEQUN_ALERT_WEBHOOK_URL.",
    )
    def _alert(context: dg.RunFailureSensorContext):  # type: ignore[no-untyped-def]
        url = settings.alert_webhook_url
        if not url:
            return dg.SkipReason("KEQUN_ALERT_WEBHOOK_URL is not set: alerts are off")
        failure = context.failure_event.message if context.failure_event else ""
        alert = alert_for_run(context.instance, context.dagster_run, settings.ui_url,
                              failure or "")
        status = send_alert(url, alert)
        context.log.info(f"alert {alert.kind} for run {alert.run_id} posted ({status})")
        return None

    return _alert
