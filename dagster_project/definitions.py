"""The kequn code location: every area's assets, one policy, one daily build.

``build_defs(kequn)`` is the single place where the ``kequn`` resource is bound, the
executor is chosen, and cross-cutting policy (owners, the daily build schedule) is
applied; tests and the command line call it instead of restating it. It never fails
because a definition file is wrong: broken definitions are failing assets.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from app.context import KequnContext
from assets import imports_sensor, issuance, raw, retention, rules, segments, sync, tags
from assets.common import DAILY, RESOURCE, daily_partitions
from assets.spark import SPARK_RESOURCE, SparkResource
from dagster_project.alerts import build_alert_sensor
from dagster_project.executor import threaded_executor

AREAS = (raw, tags, segments, imports_sensor, sync, issuance, rules, retention)
"""Each area module exposes ``build_definitions(kequn) -> dg.Definitions``."""
DEFAULT_OWNER = "team:data_platform"
DAILY_BUILD_JOB = "daily_build"
MATERIALIZE_JOB = "materialize"
"""The job `kequn materialize` and `kequn demo` run (narrowed per run to ``--select``)."""
DAILY_BUILD_HOUR = 2
"""The tag and segment build runs at 02:00 Asia/Shanghai for the day that just ended."""


def _with_default_owner(spec: dg.AssetSpec) -> dg.AssetSpec:
    return spec if spec.owners else spec.replace_attributes(owners=[DEFAULT_OWNER])


def kequn_resource(kequn: KequnContext) -> dg.ResourceDefinition:
    """The ``kequn`` resource: ``kequn`` itself, with the serving database kept open for
    as long as a run uses it (initialised once per run by the run's executor), so that
    the steps' own connections close without checkpointing it each time
    (:meth:`~app.context.KequnContext.serving_kept_open`)."""

    @dg.resource(description="kequn's settings, project, plan and connections.")
    def _kequn(_: dg.InitResourceContext) -> Iterator[KequnContext]:
        with kequn.serving_kept_open():
            yield kequn

    return _kequn


def daily_build_selection() -> dg.AssetSelection:
    """Tags and segments: what the 02:00 build materialises for yesterday."""
    return dg.AssetSelection.key_prefixes(["tags"], ["segments"])


def materialize_selection() -> dg.AssetSelection:
    """Every daily-partitioned asset: all but ``raw/*``."""
    return dg.AssetSelection.all() - dg.AssetSelection.key_prefixes(["raw"])


def build_defs(kequn: KequnContext | None = None) -> dg.Definitions:
    """All kequn definitions for the context ``kequn`` (the environment's when None).

    Daily partitions start at ``kequn.settings.first_day`` (applied here, to every asset
    its area declared daily).
    """
    kequn = kequn or KequnContext()
    daily = daily_partitions(kequn.settings.first_day)
    daily_build = dg.define_asset_job(
        DAILY_BUILD_JOB,
        selection=daily_build_selection(),
        description="Build every tag, the wide table, the catalog and every segment for a day.",
    )
    materialize = dg.define_asset_job(
        MATERIALIZE_JOB,
        selection=materialize_selection(),
        description="What `kequn materialize` and `kequn demo` run: every daily asset, "
        "narrowed per run to the command's --select.",
    )
    core = dg.Definitions(
        jobs=[daily_build, materialize],
        schedules=[
            dg.build_schedule_from_partitioned_job(
                daily_build,
                name="daily_build_schedule",
                hour_of_day=DAILY_BUILD_HOUR,
                minute_of_hour=0,
                default_status=dg.DefaultScheduleStatus.RUNNING,
                description="02:00 Asia/Shanghai: build yesterday's tags and segments.",
            )
        ],
        sensors=[build_alert_sensor(kequn.settings)],
        executor=threaded_executor,
        resources={RESOURCE: kequn_resource(kequn),
                   **({SPARK_RESOURCE: SparkResource().for_context(kequn)}
                      if kequn.settings.engine == "spark" else {})},
    )
    merged = dg.Definitions.merge(*(area.build_definitions(kequn) for area in AREAS), core)

    def policy(spec: dg.AssetSpec) -> dg.AssetSpec:
        spec = _with_default_owner(spec)
        if spec.partitions_def == DAILY and daily != DAILY:
            spec = spec.replace_attributes(partitions_def=daily)
        return spec

    return merged.permissive_map_resolved_asset_specs(func=policy, selection=None)


@dg.definitions
def defs() -> dg.Definitions:
    """Entry point for `dagster dev` / `dg`: definitions from the environment's settings."""
    return build_defs()
