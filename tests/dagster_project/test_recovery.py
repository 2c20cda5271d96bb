"""A killed `kequn materialize` never makes the next one hang, and failures read clearly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from app.context import KequnContext
from dagster_project.runner import (
    PID_TAG,
    dagster_instance,
    generate_demo_warehouse,
    materialize_days,
    recover_dead_runs,
    run_tags,
)
from kequn.errors import ExecutionError

DAY = date(2026, 3, 31)
KEQUN = [str(Path(sys.executable).with_name("kequn"))]


def test_only_runs_of_dead_processes_on_this_host_are_recovered() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        tags = {**run_tags(), PID_TAG: str(dead.pid)}
        gone = instance.create_run_for_job(dg.GraphDefinition("g").to_job(), tags=tags)
        alive = instance.create_run_for_job(dg.GraphDefinition("g").to_job(), tags=run_tags())
        other = instance.create_run_for_job(dg.GraphDefinition("g").to_job(),
                                            tags={**tags, "kequn/host": "elsewhere"})
        for run in (gone, alive, other):
            instance.handle_run_event(run.run_id, dg.DagsterEvent(
                event_type_value="PIPELINE_START", job_name=run.job_name))
        assert recover_dead_runs(instance) == [gone.run_id]
        assert instance.get_run_by_id(gone.run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive.run_id).status == dg.DagsterRunStatus.STARTED
        assert instance.get_run_by_id(other.run_id).status == dg.DagsterRunStatus.STARTED
        assert recover_dead_runs(instance) == []


@pytest.mark.slow
def test_materialize_after_a_sigkill_does_not_hang(tmp_path: Path) -> None:
    kequn = KequnContext()
    instance = dagster_instance(kequn.settings)
    generate_demo_warehouse(customers=3000, seed=5, end_date=DAY, kequn=kequn,
                            instance=instance)
    cwd = Path(__file__).resolve().parents[2]
    victim = subprocess.Popen([*KEQUN, "materialize", "--as-of", DAY.isoformat()], cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    killed = False
    while time.monotonic() < deadline and victim.poll() is None:
        runs = instance.get_runs(filters=dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.STARTED], tags={PID_TAG: str(victim.pid)}))
        if runs and instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots:
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()
            killed = True
            break
        time.sleep(0.05)
    assert killed, "the first run finished before it could be killed holding its slot"
    (run,) = instance.get_runs(filters=dg.RunsFilter(tags={PID_TAG: str(victim.pid)}))
    assert run.status == dg.DagsterRunStatus.STARTED  # what the kill leaves behind
    again = subprocess.run([*KEQUN, "materialize", "--as-of", DAY.isoformat(), "--select",
                            "key:tags/drawn"], cwd=cwd, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    # the process ends without the interpreter's teardown, its Dagster files closed first:
    # the run's event log is checkpointed, no WAL left beside it
    newest = max((f for f in (kequn.settings.dagster_home / "history" / "runs").glob("*.db")
                  if f.name != "index.db"), key=lambda f: f.stat().st_mtime)
    assert not Path(f"{newest}-wal").exists()
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert not [s for s in instance.event_log_storage.get_concurrency_info("duckdb")
                .claimed_slots if s.run_id == run.run_id]


@pytest.mark.slow
def test_a_failed_step_prints_the_kequn_error_not_dagsters_wrapper() -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        kequn = KequnContext()
        generate_demo_warehouse(customers=1000, seed=5, end_date=DAY, kequn=kequn,
                                instance=instance)
        with pytest.raises(ExecutionError) as failure:
            materialize_days([DAY], select="key:segments/wake_up", kequn=kequn,
                             instance=instance)
    message = failure.value.message
    assert "Error occurred while executing" not in message
    assert "DagsterExecutionStepExecutionError" not in message
    assert "segments__wake_up: " in message and "tags.customer_tags does not exist" in message
