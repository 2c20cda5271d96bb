"""Running the asset graph in-process: what `kequn materialize` and `kequn demo` call.

Runs go through the same Definitions that the Dagster UI loads, and are recorded in
the Dagster instance at ``DAGSTER_HOME`` (``data/dagster_home`` by default), so a run
started from the command line shows in the UI's run history.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from app.context import KequnContext
from assets.common import first_partition_day
from dagster_project.definitions import MATERIALIZE_JOB, build_defs
from kequn.errors import ExecutionError, ValidationError
from kequn.settings import Settings

QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
"""Run config that keeps Dagster's console log quiet: the command reports failures itself
(ExecutionError, one line per failed step) and the UI still has every event."""
_DAGSTER_YAML = Path(__file__).with_name("dagster.yaml")


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


def _failure_text(result: dg.ExecuteInProcessResult) -> str:
    lines = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.step_failure_data.error if event.step_failure_data else None
            message = error.message.strip() if error else "failed"
            lines.append(f"  {event.step_key}: {message}")
    return "\n".join(lines) or "  (no step failure recorded)"


def materialize_days(
    days: Sequence[date],
    *,
    select: str | None = None,
    kequn: KequnContext,
    instance: dg.DagsterInstance | None = None,
) -> list[DayRun]:
    """Materialise the selected daily assets for each day in order; stop at the first failure.

    Raises ExecutionError naming the day and every failed step (a failed blocking check or
    a broken definition included) when a run fails; runs already finished stay
    materialised, and the steps of a failed run that did not need the failure completed.
    """
    defs = build_defs(kequn)
    job = defs.resolve_job_def(MATERIALIZE_JOB)
    keys = _selection(defs, select)
    first = first_partition_day(job.partitions_def)
    instance = instance or dagster_instance(kequn.settings)
    runs = []
    for day in days:
        if day < first:
            raise ValidationError(f"{day} is before the first partition ({first}; "
                                  "set KEQUN_FIRST_DAY to start earlier)")
        result = job.execute_in_process(
            partition_key=day.isoformat(), instance=instance, raise_on_error=False,
            run_config=QUIET_LOGS, asset_selection=keys,
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
    result = job.execute_in_process(
        run_config={"ops": {"demo_warehouse": {"config": config}}, **QUIET_LOGS},
        instance=instance or dagster_instance(kequn.settings),
        asset_selection=raw_keys,
        raise_on_error=False,
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
