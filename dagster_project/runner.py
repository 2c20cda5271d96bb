"""Running the asset graph in-process: what `kequn materialize` and `kequn demo` call.

Runs go through the same Definitions that the Dagster UI loads, and are recorded in
the Dagster instance at ``DAGSTER_HOME`` (``data/dagster_home`` by default), so a run
started from the command line shows in the UI's run history.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from app.context import KequnContext
from assets.common import first_partition_day
from dagster_project.definitions import MATERIALIZE_JOB, build_defs
from dagster_project.executor import execute_in_this_process
from kequn.errors import ExecutionError, ValidationError
from kequn.settings import Settings

QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
"""Run config that keeps Dagster's console log quiet: the command reports failures itself
(ExecutionError, one line per failed step) and the UI still has every event."""
_DAGSTER_YAML = Path(__file__).with_name("dagster.yaml")
PID_TAG, HOST_TAG, STARTED_TAG = "kequn/pid", "kequn/host", "kequn/process_started"
"""Run tags naming the process that runs a CLI run, so a later run can tell it died."""


@dataclass
class DayRun:
    """The outcome of materialising one business day."""

    day: date
    run_id: str
    materialized: list[str] = field(default_factory=list)
    checks_failed: list[str] = field(default_factory=list)


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent Dagster instance under ``settings.dagster_home`` (created if missing)."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    # dagster.yaml places the storage under $DAGSTER_HOME: make it the configured home
    os.environ["DAGSTER_HOME"] = str(home.resolve())
    config = home / "dagster.yaml"
    if not config.exists():
        shutil.copyfile(_DAGSTER_YAML, config)
    return dg.DagsterInstance.from_config(str(home))


def days_between(first: date, last: date) -> list[date]:
    """Every day from ``first`` to ``last`` inclusive; an error if the range is reversed."""
    if last < first:
        raise ValidationError(f"--to {last} is before --from {first}")
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _selection(defs: dg.Definitions, select: str | None) -> list[dg.AssetKey] | None:
    """The asset keys of the materialize job that ``select`` picks (None: the whole job)."""
    if not select:
        return None
    try:
        chosen = dg.AssetSelection.from_string(select)
    except Exception as exc:  # dagster raises several types for a bad selection string
        raise ValidationError(f"bad --select {select!r}: {exc}") from exc
    graph = defs.resolve_asset_graph()
    job_keys = defs.resolve_job_def(MATERIALIZE_JOB).asset_layer.selected_asset_keys
    keys = chosen.resolve(graph) & job_keys
    if not keys:
        raise ValidationError(f"--select {select!r} matches no asset")
    return sorted(keys)


_WRAPPERS = ("dagster._core.errors.", "DagsterExecutionStepExecutionError",
             "DagsterUserCodeExecutionError")


def underlying_message(error) -> str:
    """The innermost error of a Dagster step failure, without Dagster's wrapper text
    ('Error occurred while executing op ...') or the exception's module path."""
    while error is not None and error.cause is not None and (
            error.cls_name in ("DagsterExecutionStepExecutionError",
                               "DagsterUserCodeExecutionError")
            or error.message.startswith(_WRAPPERS)):
        error = error.cause
    if error is None:
        return "failed"
    message = error.message.strip()
    prefix = f"{error.cls_name}: " if error.cls_name else ""
    for head in (prefix, f"kequn.errors.{prefix}"):
        if head and message.startswith(head):
            message = message[len(head):]
    if message.startswith("kequn.errors."):
        message = message.split(": ", 1)[-1]
    return message


def _failure_text(result: dg.ExecuteInProcessResult) -> str:
    lines = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.step_failure_data.error if event.step_failure_data else None
            message = underlying_message(error) if error else "failed"
            lines.append(f"  {event.step_key}: {message}")
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            lines.append(f"  check {evaluation.asset_key.to_user_string()}:"
                         f"{evaluation.check_name} failed: {evaluation.description or ''}")
    return "\n".join(lines) or "  (no step failure recorded)"


def _process_started(pid: int) -> str:
    """The start time of process ``pid`` in clock ticks since boot ('' when unknown): with
    the pid it identifies one process even after the pid is reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]


def run_tags() -> dict[str, str]:
    """Tags recording which process (pid, host, start time) executes a run."""
    pid = os.getpid()
    return {PID_TAG: str(pid), HOST_TAG: socket.gethostname(),
            STARTED_TAG: _process_started(pid)}


def _process_gone(tags: dict[str, str]) -> bool:
    """Whether the process a run's tags name is certainly gone (same host only)."""
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return False
    pid = int(tags[PID_TAG])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    started = tags.get(STARTED_TAG, "")
    return bool(started) and _process_started(pid) not in ("", started)


def recover_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed every unfinished run whose process is gone, and free its pool slots.

    A run whose process was killed (SIGKILL, power loss) stays STARTED and keeps its
    concurrency slot (the ``duckdb`` pool has one), so every later run would wait forever.
    Only runs tagged by :func:`run_tags` on this host are judged; returns their ids.
    """
    unfinished = instance.get_runs(filters=dg.RunsFilter(statuses=[
        dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.CANCELING]))
    recovered = []
    for run in unfinished:
        if not _process_gone(dict(run.tags)):
            continue
        instance.report_run_failed(run, message=(
            f"the process running this run (pid {run.tags[PID_TAG]} on "
            f"{run.tags[HOST_TAG]}) is gone (killed?); marked failed by the next kequn run"))
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        recovered.append(run.run_id)
    return recovered


def materialize_days(
    days: Sequence[date],
    *,
    select: str | None = None,
    kequn: KequnContext,
    instance: dg.DagsterInstance | None = None,
) -> list[DayRun]:
    """Materialise the selected daily assets for each day in order; stop at the first failure.

    Runs left unfinished by a killed process are first marked failed and their pool slots
    freed (:func:`recover_dead_runs`), so nothing waits for them. Raises ExecutionError
    naming the day and every failed step (a failed blocking check or a broken definition
    included, with the underlying kequn message) when a run fails; runs already finished stay
    materialised, and the steps of a failed run that did not need the failure completed.
    """
    defs = build_defs(kequn)
    job = defs.resolve_job_def(MATERIALIZE_JOB)
    keys = _selection(defs, select)
    first = first_partition_day(job.partitions_def)
    with _opened(instance, kequn) as instance:
        return _materialize(job, days, first, keys, instance)


def _opened(instance: dg.DagsterInstance | None,
            kequn: KequnContext) -> AbstractContextManager[dg.DagsterInstance]:
    """``instance`` as it is, or the persistent instance, opened now and closed after the
    block (its storage's connections too: their files are then checkpointed and tidy)."""
    return nullcontext(instance) if instance is not None else dagster_instance(kequn.settings)


def _materialize(job: dg.JobDefinition, days: Sequence[date], first: date,
                 keys: list[dg.AssetKey] | None,
                 instance: dg.DagsterInstance) -> list[DayRun]:
    """:func:`materialize_days`' runs on ``instance``."""
    recover_dead_runs(instance)
    runs = []
    for day in days:
        if day < first:
            raise ValidationError(f"{day} is before the first partition ({first}; "
                                  "set KEQUN_FIRST_DAY to start earlier)")
        result = execute_in_this_process(
            job, partition_key=day.isoformat(), instance=instance,
            run_config=QUIET_LOGS, tags=run_tags(), asset_selection=keys,
        )
        run = DayRun(day, result.run_id)
        for event in result.get_asset_materialization_events():
            run.materialized.append(event.asset_key.to_user_string())
        for event in result.get_asset_check_evaluations():
            if not event.passed:
                run.checks_failed.append(f"{event.asset_key.to_user_string()}:{event.check_name}")
        if not result.success:
            raise ExecutionError(
                f"the run for {day} failed (run {result.run_id}):\n{_failure_text(result)}"
            )
        runs.append(run)
    return runs


def generate_demo_warehouse(
    *,
    customers: int,
    seed: int,
    end_date: date | None,
    kequn: KequnContext,
    instance: dg.DagsterInstance | None = None,
) -> tuple[dict[str, int], date]:
    """Materialise raw/* with the demo generator; returns rows per table and the last day."""
    defs = build_defs(kequn)
    job = defs.resolve_implicit_job_def_def_for_assets(
        [dg.AssetKey(["raw", "customers"])]
    )
    if job is None:
        raise ValidationError("raw assets are external (KEQUN_RAW_MODE=external): "
                              "kequn does not generate them")
    raw_keys = [k for k in defs.resolve_all_asset_keys() if k.path[0] == "raw"]
    config = {"customers": customers, "seed": seed,
              "end_date": end_date.isoformat() if end_date else ""}
    with _opened(instance, kequn) as instance:
        recover_dead_runs(instance)
        result = job.execute_in_process(
            run_config={"ops": {"demo_warehouse": {"config": config}}, **QUIET_LOGS},
            instance=instance, tags=run_tags(), asset_selection=raw_keys, raise_on_error=False,
        )
    if not result.success:
        raise ExecutionError(f"generating the demo warehouse failed:\n{_failure_text(result)}")
    rows: dict[str, int] = {}
    last_day = end_date
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        rows[event.asset_key.path[-1]] = int(metadata["dagster/row_count"].value)
        last_day = date.fromisoformat(metadata["end_date"].value)
    if last_day is None:
        raise ExecutionError("the demo generator recorded no end date")
    return rows, last_day
