"""The run's executor: a run's steps on threads of its one process, two at a time.

Dagster's in-process executor runs one step after the other. A day's run has steps that
wait on different things: the tag build, segments, syncs and rules work in the DuckDB
warehouse, and a campaign's batch issuance works in the serving database only (about 3 s
at 10M customers, mostly inside SQLite, which lets go of Python's lock). This executor
runs the steps of one run in the same process, as the in-process executor does (no
process start, no re-import, the same resources), on up to ``max_concurrent`` threads,
and keeps every step that touches the warehouse in one lane: at most one of them runs at
a time (DuckDB allows one read-write process per file, and an analyst's query opens it
read-only from its own process, which a write connection held by another step would
refuse). So a batch issues while the segments and syncs after it are built.

The lane is the op tag :data:`assets.common.WAREHOUSE_LANE` (run-scoped tag concurrency
limits of Dagster's own scheduler, ``ActiveExecution``); ready steps start in the order
of their ``dagster/priority`` tag. Each step's events are stored as it makes them (the
event log storage is shared by the threads and locks its connections) and handed to the
run in the order they arrive. A run that receives a termination signal starts no further
step and ends once the running ones have finished (a thread cannot be stopped from
outside; a killed process loses nothing either: every database write is a transaction).

A step outside the lane keeps a core busy beside the warehouse step: while it runs, the
warehouse's queries use one thread fewer (:mod:`kequn.cores`; on 2 cores, one instead
of two), so neither waits for the other's descheduled threads.

The modules that steps import only when they run (op tag :data:`assets.common.PRELOAD`:
the segment build's, the rules' and their polars and Arrow pieces, about 0.8 s) are
imported on a background thread as the run starts, while the tag build works inside
DuckDB, instead of each on the warehouse lane when its first step starts; an entry
``module:function`` also calls that function there (an analyst's segment starts its
query process ahead, :func:`segments.sandbox.prestart`).
"""

from __future__ import annotations

import importlib
import os
import queue
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass

import dagster as dg
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.api import ExecuteRunWithPlanIterable
from dagster._core.execution.compute_logs import create_compute_log_file_key
from dagster._core.execution.context.system import (
    PlanExecutionContext,
    PlanOrchestrationContext,
    StepExecutionContext,
)
from dagster._core.execution.context_creation_job import PlanExecutionContextManager
from dagster._core.execution.plan.active import ActiveExecution
from dagster._core.execution.plan.execute_plan import (
    _trigger_hook,
    dagster_event_sequence_for_step,
)
from dagster._core.execution.plan.instance_concurrency_context import (
    InstanceConcurrencyContext,
)
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode
from dagster._core.executor.base import Executor
from dagster._utils.error import serializable_error_info_from_exc_info

from assets.common import PRELOAD, WAREHOUSE_LANE
from kequn.cores import working_beside_the_warehouse

IN_WAREHOUSE = "warehouse"
"""The value of the :data:`~assets.common.WAREHOUSE_LANE` tag on a warehouse step."""
MAX_CONCURRENT = 2
"""Steps running at once: the machine this runs on has two cores."""
_POLL_S = 0.5
"""How often the run's thread looks for a termination signal while steps run."""


@dataclass(frozen=True)
class _Finished:
    """A step's thread is done (``error``: what escaped Dagster's own step handling)."""

    error: BaseException | None = None


class ThreadedExecutor(Executor):
    """Runs a plan's steps on up to ``max_concurrent`` threads of this process, one
    warehouse step at a time (see the module docstring)."""

    def __init__(self, retries: RetryMode, max_concurrent: int = MAX_CONCURRENT):
        self._retries = retries
        self.max_concurrent = max(1, int(max_concurrent))

    @property
    def retries(self) -> RetryMode:
        return self._retries

    def execute(self, plan_context: PlanOrchestrationContext,
                execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        """Dagster's executor call: the run's events, the steps' among them."""
        keys = execution_plan.step_keys_to_execute
        yield DagsterEvent.engine_event(
            plan_context,
            f"Executing steps on up to {self.max_concurrent} threads in process "
            f"(pid: {os.getpid()})",
            event_specific_data=EngineEventData.in_process(os.getpid(), keys),
        )
        limit = self.max_concurrent

        def iterator(job_context: PlanExecutionContext,
                     execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
            return _threaded_steps(job_context, execution_plan, limit)

        yield from iter(ExecuteRunWithPlanIterable(
            execution_plan=plan_context.execution_plan,
            iterator=iterator,
            execution_context_manager=PlanExecutionContextManager(
                job=plan_context.job,
                retry_mode=plan_context.retry_mode,
                execution_plan=plan_context.execution_plan,
                run_config=plan_context.run_config,
                dagster_run=plan_context.dagster_run,
                instance=plan_context.instance,
                raise_on_error=plan_context.raise_on_error,
                output_capture=plan_context.output_capture,
            ),
        ))


def _run_step(key: str, step_context: StepExecutionContext,
              events: queue.Queue[tuple[str, DagsterEvent | _Finished]]) -> None:
    """A step's thread: its events into ``events``, then :class:`_Finished`. A step
    outside the warehouse lane counts as keeping a core busy beside the warehouse while it
    runs (:mod:`kequn.cores`)."""
    beside = (nullcontext() if step_context.step.tags.get(WAREHOUSE_LANE) == IN_WAREHOUSE
              else working_beside_the_warehouse())
    try:
        with beside:
            for event in dagster_event_sequence_for_step(step_context):
                events.put((key, event))
    except BaseException as error:  # handed to the run's thread, raised there
        events.put((key, _Finished(error)))
        return
    events.put((key, _Finished()))


def _preload(plan: ExecutionPlan) -> threading.Thread | None:
    """Start importing, on a background thread, the modules the plan's steps name in their
    :data:`~assets.common.PRELOAD` tag; the thread (None when there are none)."""
    modules = sorted({module.strip() for step in plan.get_steps_to_execute_in_topo_order()
                      for module in step.tags.get(PRELOAD, "").split(",") if module.strip()})
    if not modules:
        return None
    thread = threading.Thread(target=_import, args=(modules,), name="kequn-preload",
                              daemon=True)
    thread.start()
    return thread


def _import(modules: list[str]) -> None:
    """Import ``modules`` (``module:function``: and call that function, which readies
    something the step will use); one that fails is left to the step that needs it, which
    imports it again and reports the error where it belongs."""
    for entry in modules:
        module, _, function = entry.partition(":")
        try:
            loaded = importlib.import_module(module)
            if function:
                getattr(loaded, function)()
        except Exception:  # the step's own import (or its own start) reports it
            continue


def _threaded_steps(job_context: PlanExecutionContext, plan: ExecutionPlan,
                    limit: int) -> Iterator[DagsterEvent]:
    """The plan's step events, steps started as they become ready (at most ``limit`` at
    a time, one per lane)."""
    _preload(plan)
    instance = job_context.instance
    lanes = [{"key": WAREHOUSE_LANE, "value": IN_WAREHOUSE, "limit": 1}]
    with ExitStack() as stack:
        concurrency = stack.enter_context(
            InstanceConcurrencyContext(instance, job_context.dagster_run))
        active = stack.enter_context(plan.start(
            retry_mode=job_context.retry_mode, max_concurrent=limit,
            tag_concurrency_limits=lanes, instance_concurrency_context=concurrency,
            step_dependency_config=job_context.step_dependency_config))
        logs = instance.compute_log_manager
        log_key = logs.build_log_key_for_run(job_context.run_id, create_compute_log_file_key())
        keys = [step.key for step in plan.get_steps_to_execute_in_topo_order()]
        capture = ExitStack()
        try:
            log_context = capture.enter_context(logs.capture_logs(log_key))
            yield DagsterEvent.capture_logs(job_context, keys, log_key, log_context)
        except Exception:
            yield DagsterEvent.engine_event(
                job_context, "Exception while setting up compute log capture",
                EngineEventData(error=serializable_error_info_from_exc_info(sys.exc_info())))
        with capture:
            yield from _schedule(job_context, active, limit)


def _schedule(job_context: PlanExecutionContext, active: ActiveExecution,
              limit: int) -> Iterator[DagsterEvent]:
    """Start ready steps, hand on their events, finish them; until the plan is done."""
    events: queue.Queue[tuple[str, DagsterEvent | _Finished]] = queue.Queue()
    running: dict[str, tuple[StepExecutionContext, list[DagsterEvent]]] = {}
    stopping = False
    while (not stopping and not active.is_complete) or running:
        if not stopping and active.check_for_interrupts():
            stopping = True
            active.mark_interrupted()
            yield DagsterEvent.engine_event(
                job_context, "received a termination signal: no further step starts; the "
                f"running steps ({', '.join(sorted(running)) or 'none'}) finish first",
                EngineEventData.interrupted(list(running)))
        if not stopping:
            for step in active.get_steps_to_execute(limit=limit - len(running)):
                step_context = job_context.for_step(step, active.get_known_state())
                running[step.key] = (step_context, [])
                threading.Thread(target=_run_step, args=(step.key, step_context, events),
                                 name=f"kequn-step-{step.key}", daemon=True).start()
            yield from active.concurrency_event_iterator(job_context)
        if not running:
            if not stopping:
                yield from active.plan_events_iterator(job_context)
                if not active.is_complete:
                    active.sleep_til_ready()
            continue
        try:
            key, item = events.get(timeout=_POLL_S)
        except queue.Empty:
            continue  # look for an interruption again
        step_context, seen = running[key]
        if isinstance(item, _Finished):
            del running[key]
            if item.error is not None:
                raise item.error
            active.verify_complete(job_context, key)
            for event in active.plan_events_iterator(job_context):
                seen.append(event)
                yield event
            yield from _trigger_hook(step_context, seen)
            continue
        seen.append(item)
        yield item
        active.handle_event(item)


@dg.executor(name="kequn_threads", config_schema={
    "max_concurrent": dg.Field(int, default_value=MAX_CONCURRENT, is_required=False,
                               description="Steps running at once (one warehouse step).")})
def threaded_executor(init_context: dg.InitExecutorContext) -> ThreadedExecutor:
    """Steps on threads of the run's process, one warehouse step at a time."""
    return ThreadedExecutor(RetryMode.ENABLED,
                            init_context.executor_config.get("max_concurrent",
                                                             MAX_CONCURRENT))


def execute_in_this_process(job: dg.JobDefinition, *, instance: dg.DagsterInstance,
                            partition_key: str | None = None,
                            run_config: dict | None = None,
                            tags: dict[str, str] | None = None,
                            asset_selection: list[dg.AssetKey] | None = None,
                            ) -> dg.ExecuteInProcessResult:
    """:meth:`dagster.JobDefinition.execute_in_process` (a run of ``job`` in this process,
    its events in the result, errors reported rather than raised), with its steps on
    :class:`ThreadedExecutor`'s threads instead of one after the other.

    ``execute_in_process`` always replaces a job's executor with Dagster's in-process one;
    this is its body with that one line different."""
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.definitions.partitions.context import partition_loading_context
    from dagster._core.execution.execute_in_process import (
        core_execute_in_process,
        merge_run_tags,
        type_check_and_normalize_args,
    )

    config, ops, selection, resources, partition_key, inputs = type_check_and_normalize_args(
        run_config=run_config, partition_key=partition_key, op_selection=None,
        asset_selection=asset_selection, input_values=None, resources=None)
    ephemeral = job.as_ephemeral_job(resource_defs=resources, input_values=inputs,
                                     op_selection=ops, asset_selection=selection)
    if partition_key and ephemeral.partitions_def:
        with partition_loading_context(dynamic_partitions_store=instance) as context:
            ephemeral.validate_partition_key(partition_key=partition_key,
                                             selected_asset_keys=set(selection),
                                             context=context)
    if not config and ephemeral.partitioned_config and partition_key:
        config = ephemeral.partitioned_config.get_run_config_for_partition_key(partition_key)
    return core_execute_in_process(
        job=InMemoryJob(job_def=ephemeral.with_executor_def(threaded_executor)),
        run_config=config, instance=instance, output_capturing_enabled=True,
        raise_on_error=False,
        run_tags=merge_run_tags(job_def=job, partition_key=partition_key, tags=tags,
                                asset_selection=selection, instance=instance,
                                run_config=config),
        asset_selection=frozenset(selection))
