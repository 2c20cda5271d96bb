"""The run's executor: steps on two threads of the run's process, one warehouse step at a
time, the steps a campaign's batch waits for first (dagster_project/executor.py)."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import threading
import time

import dagster as dg
import pytest
from dagster._core.execution.retries import RetryMode

from app.context import KequnContext
from assets.common import (
    FEEDS_ISSUANCE,
    PRELOAD,
    RULE_STEP,
    TAG_BUILD,
    WAREHOUSE_STEP,
    WRITES_SERVING,
    issuance_segments,
)
from dagster_project.definitions import MATERIALIZE_JOB, build_defs
from dagster_project.executor import ThreadedExecutor, _preload, execute_in_this_process
from kequn.cores import machine_cores, warehouse_threads
from kequn.settings import FALLBACK_FIRST_DAY, REPO_ROOT, Settings

WAIT_S = 20.0
"""How long a step waits for one that should run beside it (the test fails, not hangs)."""


def _job(*assets: dg.AssetsDefinition) -> dg.JobDefinition:
    return dg.Definitions(assets=list(assets)).resolve_implicit_global_asset_job_def()


def _record(spans: dict[str, tuple[float, float]], name: str, seconds: float) -> None:
    started = time.monotonic()
    time.sleep(seconds)
    spans[name] = (started, time.monotonic())


def _meeting(timeout: float, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
    """A run of a serving-only step and a warehouse step that each wait until the other
    one has started: it succeeds only when both run at once."""
    both = threading.Barrier(2, timeout=timeout)

    @dg.asset
    def serving_only() -> None:
        both.wait()

    @dg.asset(op_tags=WAREHOUSE_STEP)
    def warehouse() -> None:
        both.wait()

    with dg.DagsterInstance.ephemeral() as instance:
        return execute_in_this_process(_job(serving_only, warehouse), instance=instance,
                                       run_config=run_config)


def test_a_serving_step_runs_beside_a_warehouse_step() -> None:
    result = _meeting(WAIT_S)
    assert result.success
    assert {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} \
        == {"serving_only", "warehouse"}


def test_a_warehouse_step_gets_the_cores_the_step_beside_it_leaves() -> None:
    both = threading.Barrier(2, timeout=WAIT_S)
    seen: dict[str, int] = {}

    @dg.asset
    def serving_only() -> None:
        both.wait()  # the warehouse step has started
        both.wait()  # and has read its cores

    @dg.asset(op_tags=WAREHOUSE_STEP)
    def warehouse() -> None:
        both.wait()
        seen["beside"] = warehouse_threads()
        both.wait()

    @dg.asset(deps=[serving_only], op_tags=WAREHOUSE_STEP)
    def warehouse_after() -> None:
        seen["alone"] = warehouse_threads()

    with dg.DagsterInstance.ephemeral() as instance:
        result = execute_in_this_process(_job(serving_only, warehouse, warehouse_after),
                                         instance=instance)
    assert result.success
    cores = machine_cores()
    assert seen == {"beside": max(1, cores - 1), "alone": cores}
    assert warehouse_threads() == cores


def test_warehouse_steps_never_overlap_and_at_most_two_steps_run() -> None:
    spans: dict[str, tuple[float, float]] = {}

    def warehouse_asset(name: str) -> dg.AssetsDefinition:
        @dg.asset(name=name, op_tags=WAREHOUSE_STEP)
        def _asset() -> None:
            _record(spans, name, 0.15)
        return _asset

    def serving_asset(name: str) -> dg.AssetsDefinition:
        @dg.asset(name=name)
        def _asset() -> None:
            _record(spans, name, 0.15)
        return _asset

    assets = [*(warehouse_asset(f"w{i}") for i in range(4)),
              *(serving_asset(f"s{i}") for i in range(3))]
    with dg.DagsterInstance.ephemeral() as instance:
        assert execute_in_this_process(_job(*assets), instance=instance).success
    warehouse = sorted(v for k, v in spans.items() if k.startswith("w"))
    assert len(warehouse) == 4
    for (_, end), (start, _) in itertools.pairwise(warehouse):
        assert start >= end, "two warehouse steps ran at once"
    moments = sorted({t for span in spans.values() for t in span})
    for moment in moments:
        running = sum(start <= moment < end for start, end in spans.values())
        assert running <= 2


def test_a_failed_step_skips_what_needs_it_and_the_rest_runs() -> None:
    @dg.asset(op_tags=WAREHOUSE_STEP)
    def broken() -> None:
        raise dg.Failure(description="broken on purpose")

    @dg.asset(deps=[broken], op_tags=WAREHOUSE_STEP)
    def downstream() -> None:
        pass

    @dg.asset
    def independent() -> None:
        pass

    with dg.DagsterInstance.ephemeral() as instance:
        result = execute_in_this_process(_job(broken, downstream, independent),
                                         instance=instance)
    assert not result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in failures] == ["broken"]
    assert "broken on purpose" in str(failures[0].step_failure_data.user_failure_data
                                      .description)
    # what needs the failed step is not run (as with Dagster's in-process executor, no
    # step event names it); what does not need it is
    assert {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} \
        == {"independent"}
    assert "downstream" not in {e.step_key for e in result.all_events
                                if e.event_type_value == "STEP_START"}


def test_an_error_outside_the_steps_own_handling_fails_the_run(monkeypatch) -> None:
    import dagster_project.executor as executor

    def escaping(step_context):  # what Dagster's step machinery never lets out of a step
        raise RuntimeError("the step machinery broke")
        yield  # a generator, as the real one

    monkeypatch.setattr(executor, "dagster_event_sequence_for_step", escaping)

    @dg.asset
    def anything() -> None:
        pass

    with dg.DagsterInstance.ephemeral() as instance:
        result = execute_in_this_process(_job(anything), instance=instance)
    assert not result.success
    assert any("the step machinery broke" in (e.message or "") or (
        e.event_specific_data is not None and getattr(e.event_specific_data, "error", None)
        and "the step machinery broke" in e.event_specific_data.error.to_string())
        for e in result.all_events)


def test_the_steps_a_batch_waits_for_start_first() -> None:
    """The tag build first; a campaign's segment and its sync next; other segments next;
    the other syncs (which plan in the warehouse before they write the serving database)
    then; the rules last; the batch is in no lane. Segments and rules name the modules
    they import when they run, for the run to import early. The code location's jobs run
    on the threads."""
    kequn = KequnContext(Settings(first_day=FALLBACK_FIRST_DAY))
    defs = build_defs(kequn)
    feeding = issuance_segments(kequn)
    batches = [c for c in kequn.project.campaigns.values() if c.batch_offer]
    assert feeding == {c.target_segment for c in batches} == {"wake_up", "vip_list"}
    job = defs.resolve_job_def(MATERIALIZE_JOB)
    assert job.executor_def.name == "kequn_threads"
    for node in job.nodes:
        tags = node.definition.tags
        name = node.name
        feeds = name.split("__", 1)[-1] in feeding
        if name.startswith("segments__"):
            # an analyst's SQL segment also starts its query process ahead
            sql = kequn.project.segments[name.split("__", 1)[-1]].kind == "sql"
            assert dict(tags) == {**(FEEDS_ISSUANCE if feeds else WAREHOUSE_STEP),
                                  PRELOAD: "segments.build" + (
                                      ",segments.sandbox:prestart" if sql else "")}, name
        elif name.startswith("sync__"):
            assert dict(tags) == (FEEDS_ISSUANCE if feeds else WRITES_SERVING), name
        elif name.startswith("tags_"):
            assert dict(tags) == TAG_BUILD, name
        elif name.startswith("rules__"):
            assert dict(tags) == {**RULE_STEP,
                                  PRELOAD: "rules.run,adbc_driver_sqlite.dbapi"}, name
        elif name.startswith("issuance__"):
            assert "kequn/lane" not in tags, name


def test_ready_warehouse_steps_start_in_the_order_of_their_priority() -> None:
    started: list[str] = []

    def lane_asset(name: str, tags: dict[str, str]) -> dg.AssetsDefinition:
        @dg.asset(name=name, op_tags=tags)
        def _asset() -> None:
            started.append(name)
        return _asset

    assets = [lane_asset("a_rule", RULE_STEP),
              lane_asset("b_writes_serving", WRITES_SERVING),
              lane_asset("c_warehouse_only", WAREHOUSE_STEP),
              lane_asset("d_feeds_issuance", FEEDS_ISSUANCE)]
    with dg.DagsterInstance.ephemeral() as instance:
        assert execute_in_this_process(_job(*assets), instance=instance).success
    assert started == ["d_feeds_issuance", "c_warehouse_only", "b_writes_serving", "a_rule"]


def test_the_modules_steps_name_are_imported_in_the_background(tmp_path, monkeypatch) -> None:
    (tmp_path / "kequn_preload_probe.py").write_text(
        "LOADED = True\nSTARTED = []\n\ndef start():\n    STARTED.append(1)\n\n"
        "def broken():\n    raise RuntimeError('not now')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "kequn_preload_probe", raising=False)

    @dg.asset(op_tags={PRELOAD: "kequn_preload_probe, kequn_no_such_module, "
                                "kequn_preload_probe:start, kequn_preload_probe:broken"})
    def needs_a_module() -> None: ...

    @dg.asset
    def names_none() -> None: ...

    plan = dg.Definitions(assets=[needs_a_module, names_none]) \
        .resolve_implicit_global_asset_job_def()
    from dagster._core.execution.api import create_execution_plan

    thread = _preload(create_execution_plan(plan))
    assert thread is not None
    thread.join(30)
    probe = sys.modules["kequn_preload_probe"]
    assert probe.LOADED  # and the missing one raised nothing
    assert probe.STARTED == [1]  # called once; the broken one's error stays there
    none = dg.Definitions(assets=[names_none]).resolve_implicit_global_asset_job_def()
    assert _preload(create_execution_plan(none)) is None


def test_one_step_at_a_time_when_the_run_config_asks() -> None:
    """``execution: config: max_concurrent: 1``: the two steps cannot meet."""
    assert not _meeting(2.0, {"execution": {"config": {"max_concurrent": 1}}}).success


@pytest.mark.parametrize("limit", [1, 0, -3])
def test_at_least_one_step_at_a_time(limit: int) -> None:
    assert ThreadedExecutor(RetryMode.ENABLED, limit).max_concurrent == 1


INTERRUPTED = '''
import sys, time, pathlib
import dagster as dg
from assets.common import WAREHOUSE_STEP
from dagster_project.executor import execute_in_this_process
out = pathlib.Path(sys.argv[1])
@dg.asset(op_tags=WAREHOUSE_STEP)
def first() -> None:
    (out / "first_started").touch()
    time.sleep(2.0)
    (out / "first_done").touch()
@dg.asset(deps=[first], op_tags=WAREHOUSE_STEP)
def second() -> None:
    (out / "second").touch()
job = dg.Definitions(assets=[first, second]).resolve_implicit_global_asset_job_def()
with dg.DagsterInstance.ephemeral() as instance:
    result = execute_in_this_process(job, instance=instance)
    print(instance.get_run_by_id(result.run_id).status.value, flush=True)
'''


def test_ctrl_c_starts_no_further_step_and_lets_the_running_one_finish(tmp_path) -> None:
    script = tmp_path / "job.py"
    script.write_text(INTERRUPTED)
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               cwd=REPO_ROOT)
    deadline = time.monotonic() + WAIT_S
    while not (tmp_path / "first_started").exists():
        assert time.monotonic() < deadline and process.poll() is None, "never started"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=WAIT_S)
    assert out.split() == ["FAILURE"]
    assert (tmp_path / "first_done").exists()  # the running step finished its work
    assert not (tmp_path / "second").exists()  # nothing started after the signal
