"""Sync assets: ``sync/<segment>`` for every segment whose header turns syncing on.

Each asset (daily partitions, depends on ``segments/<segment>``) runs
:func:`serving.sync.sync_segment` for its partition day and reports added, removed,
unchanged, duration and status as metadata. A sync blocked by its guardrails is
recorded in ``sync_log`` and then fails the run (``dagster.Failure`` with the reason),
so it shows red in the UI; run config ``force: true`` (or ``kequn sync --force``)
overrides. A day older than the synced one is skipped (metadata ``status: skipped``).

Each synced segment also gets a job ``sync_<segment>`` and a schedule
``sync_<segment>_schedule`` on its ``sync_schedule`` cron in Asia/Shanghai, running by
default. **Which day a tick syncs**: the business day before the tick's local date,
i.e. the last complete day, whose segments the 02:00 daily build has produced (a
06:00 tick on 2 March syncs the 1 March partition). A tick whose segment partition has
not been materialised yet is skipped with the reason instead of syncing nothing.

Made from the loaded project (segments with sync settings); no database is opened at
load time.
"""


from datetime import date, datetime

import dagster as dg

from app.context import KequnContext
from app.engines import stage_from_lake
from assets.common import (
    DAILY,
    DUCKDB_POOL,
    FEEDS_ISSUANCE,
    WRITES_SERVING,
    Kequn,
    as_of_day,
    first_partition_day,
    issuance_segments,
    serving_kind,
)
from kequn.days import BUSINESS_TIMEZONE, business_day
from project.segment import Segment
from sync.run import sync_segment

GROUP = "sync"


def sync_key(name: str) -> dg.AssetKey:
    """``sync/<name>``."""
    return dg.AssetKey(["sync", name])


def business_day_for_tick(tick: datetime) -> date:
    """The partition a schedule tick syncs: the day before the tick's Asia/Shanghai date.

    >>> from zoneinfo import ZoneInfo
    >>> business_day_for_tick(datetime(2024, 3, 1, 16, 0, tzinfo=ZoneInfo("UTC")))
    datetime.date(2024, 3, 1)
    """
    return date.fromordinal(business_day(tick).toordinal() - 1)


class SyncConfig(dg.Config):
    """Run configuration of a sync asset."""

    force: bool = False
    """Apply even when guardrails block it or the day is older than the synced one."""


def _guardrail_text(target: Segment) -> str:
    s = target.sync
    assert s is not None
    parts = [
        f"max_removed_ratio {s.max_removed_ratio if s.max_removed_ratio is not None else 'none'}",
        f"max_added_ratio {s.max_added_ratio if s.max_added_ratio is not None else 'none'}",
        f"min_size {s.min_size}",
        f"allow_empty_replace {str(s.allow_empty_replace).lower()}",
    ]
    return ", ".join(parts)


def build_sync_asset(target: Segment, kind: str, *,
                     feeds_issuance: bool = False) -> dg.AssetsDefinition:
    """The ``sync/<segment>`` asset of one synced segment (``feeds_issuance``: a
    campaign's batch waits for it, :data:`assets.common.FEEDS_ISSUANCE`)."""
    name = target.name
    settings = target.sync
    assert settings is not None

    @dg.asset(
        key=sync_key(name),
        deps=[dg.AssetKey(["segments", name])],
        partitions_def=DAILY,
        pool=DUCKDB_POOL,
        op_tags=FEEDS_ISSUANCE if feeds_issuance else WRITES_SERVING,
        group_name=GROUP,
        owners=[target.owner] if target.owner else None,
        kinds={kind},
        code_version=target.definition_hash,
        description=(
            f"Sync segment '{name}' into coupon_eligibility (diff only, one transaction, "
            f"guarded: {_guardrail_text(target)}). "
            f"Schedule: {settings.schedule} ({settings.cron}, Asia/Shanghai)."
        ),
        metadata={
            "segment": name,
            "schedule": settings.schedule,
            "cron": settings.cron,
            "guardrails": _guardrail_text(target),
            "definition": str(target.path),
        },
    )
    def _sync(
        context: dg.AssetExecutionContext,
        config: SyncConfig,
        kequn: Kequn,
    ) -> dg.MaterializeResult:
        day = as_of_day(context)
        if kequn.settings.engine == "spark":  # the snapshot Spark wrote to the lake
            stage_from_lake(kequn, name, day)
        con = kequn.connect_warehouse()
        try:
            db = kequn.connect_serving()
            try:
                result = sync_segment(con, db, name, day, settings, force=config.force,
                                      definition_hash=target.definition_hash,
                                      lock_timeout=kequn.settings.sync_lock_wait_s)
            finally:
                db.close()
        finally:
            con.close()
        status = "skipped" if result.skipped_older else result.status
        metadata = {
            "business_day": day.isoformat(),
            "status": status,
            "added": result.added,
            "removed": result.removed,
            "unchanged": result.unchanged,
            "members": result.target_size,
            "previous_members": result.previous_size,
            "duration_s": round(result.duration_s, 3),
            "guardrails": result.verdict.text(),
            "reason": result.reason,
            "sync_id": result.sync_id,
            "recovered": result.recovered,
            "dagster/row_count": result.target_size,
            **{f"phase_{name}": value for name, value in result.phases.items()},
        }
        if result.status == "blocked":
            raise dg.Failure(
                description=(
                    f"sync of segment '{name}' for {day} blocked: {result.reason}. Nothing was "
                    f"applied. To apply anyway: kequn sync {name} --as-of {day} --force "
                    "(or run config force: true)"
                ),
                metadata=metadata,
            )
        context.log.info(
            f"sync {name} {day}: {status} (+{result.added} -{result.removed} "
            f"={result.unchanged}) in {result.duration_s:.2f} s"
        )
        return dg.MaterializeResult(metadata=metadata)

    return _sync


def build_sync_schedule(target: Segment, job: "dg.UnresolvedAssetJobDefinition",
                        first_day: date | None = None) -> dg.ScheduleDefinition:
    """The schedule of one synced segment: its cron in Asia/Shanghai, yesterday's partition
    (never one before ``first_day``, the first partition)."""
    first_day = first_day or first_partition_day(DAILY)
    name = target.name
    settings = target.sync
    assert settings is not None

    def evaluate(context: dg.ScheduleEvaluationContext):  # type: ignore[no-untyped-def]
        tick = context.scheduled_execution_time
        if tick is None:
            return dg.SkipReason("no scheduled execution time")
        day = business_day_for_tick(tick)
        partition = day.isoformat()
        if day < first_day:
            return dg.SkipReason(f"{partition} is before the first partition ({first_day})")
        if context.instance_ref is not None:  # None only for a bare test context
            built = context.instance.get_materialized_partitions(
                dg.AssetKey(["segments", name]))
            if partition not in built:
                return dg.SkipReason(
                    f"segments/{name} has not been built for {partition} yet; not syncing")
        return dg.RunRequest(run_key=f"sync_{name}_{partition}", partition_key=partition)

    return dg.ScheduleDefinition(
        name=f"sync_{name}_schedule",
        cron_schedule=settings.cron,
        execution_timezone=BUSINESS_TIMEZONE,
        job=job,
        execution_fn=evaluate,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            f"Sync '{name}' at {settings.schedule} ({settings.cron}) "
            "Asia/Shanghai: the previous business day's snapshot."
        ),
    )


def build_definitions(kequn: KequnContext) -> dg.Definitions:
    """Assets, jobs and schedules for every synced segment of the project."""
    kind = serving_kind(kequn.settings.serving_url)
    assets, jobs, schedules = [], [], []
    segments = {**kequn.project.segments, **kequn.project.waiting("segment")}
    feeding = issuance_segments(kequn)
    for target in (s for _, s in sorted(segments.items()) if s.sync is not None):
        assets.append(build_sync_asset(target, kind, feeds_issuance=target.name in feeding))
        job = dg.define_asset_job(
            f"sync_{target.name}",
            selection=dg.AssetSelection.assets(sync_key(target.name)),
            description=f"Sync segment '{target.name}' into coupon_eligibility for a day.",
        )
        jobs.append(job)
        schedules.append(build_sync_schedule(target, job, kequn.settings.first_day))
    return dg.Definitions(assets=assets, jobs=jobs, schedules=schedules)
