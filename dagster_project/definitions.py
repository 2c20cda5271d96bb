"""The kequn code location: every area's assets, one policy, one daily build.

``build_defs(kequn)`` is the single place where the ``kequn`` resource is bound, the
executor is chosen, and cross-cutting policy (owners, the daily build schedule) is
applied; tests and the command line call it instead of restating it. It never fails
because a definition file is wrong: broken definitions are failing assets.
"""

from __future__ import annotations

import dagster as dg

from app.context import KequnContext
from assets import imports_sensor, issuance, raw, rules, segments, sync, tags
from assets.common import RESOURCE
from assets.spark import SPARK_RESOURCE, SparkResource

AREAS = (raw, tags, segments, imports_sensor, sync, issuance, rules)
"""Each area module exposes ``build_definitions(kequn) -> dg.Definitions``."""
DEFAULT_OWNER = "team:data_platform"
DAILY_BUILD_JOB = "daily_build"
DAILY_BUILD_HOUR = 2
"""The tag and segment build runs at 02:00 Asia/Shanghai for the day that just ended."""


def _with_default_owner(spec: dg.AssetSpec) -> dg.AssetSpec:
    return spec if spec.owners else spec.replace_attributes(owners=[DEFAULT_OWNER])


def daily_build_selection() -> dg.AssetSelection:
    """Tags and segments: what the 02:00 build materialises for yesterday."""
    return dg.AssetSelection.key_prefixes(["tags"], ["segments"])


def build_defs(kequn: KequnContext | None = None) -> dg.Definitions:
    """All kequn definitions for the context ``kequn`` (the environment's when None)."""
    kequn = kequn or KequnContext()
    daily_build = dg.define_asset_job(
        DAILY_BUILD_JOB,
        selection=daily_build_selection(),
        description="Build every tag, the wide table, the catalog and every segment for a day.",
    )
    core = dg.Definitions(
        jobs=[daily_build],
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
        executor=dg.in_process_executor,
        resources={RESOURCE: kequn, **({SPARK_RESOURCE: SparkResource().for_context(kequn)}
                                       if kequn.settings.engine == "spark" else {})},
    )
    merged = dg.Definitions.merge(*(area.build_definitions(kequn) for area in AREAS), core)
    return merged.permissive_map_resolved_asset_specs(func=_with_default_owner, selection=None)


@dg.definitions
def defs() -> dg.Definitions:
    """Entry point for `dagster dev` / `dg`: definitions from the environment's settings."""
    return build_defs()
