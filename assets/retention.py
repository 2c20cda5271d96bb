"""Retention job: prune old tag and segment snapshots every day.

``retention`` (job) + ``retention_schedule`` (04:00 Asia/Shanghai, running by default):
deletes the snapshots of ``segments.members`` and the tag tables older than
``KEQUN_RETENTION_DAYS`` (default 90) days before yesterday, keeping every one a sync or
rule order still refers to (:mod:`app.retention`). Run config ``as_of`` prunes relative
to another day.
"""

from datetime import date

import dagster as dg

from app.context import KequnContext
from app.retention import prune_snapshots
from assets.common import DUCKDB_POOL, WAREHOUSE_STEP, Kequn
from kequn.days import BUSINESS_TIMEZONE, yesterday

RETENTION_JOB = "retention"
RETENTION_CRON = "0 4 * * *"


class RetentionConfig(dg.Config):
    """Run configuration of the retention job."""

    as_of: str = ""
    """Business day to count back from (YYYY-MM-DD); empty: yesterday."""


@dg.op(description="Prune tag and segment snapshots older than the retention window.",
       pool=DUCKDB_POOL, tags=WAREHOUSE_STEP)
def prune_old_snapshots(context: dg.OpExecutionContext, config: RetentionConfig,
                        kequn: Kequn) -> dg.Output:
    """Run one prune and report rows deleted per table and the old snapshots kept."""
    as_of = date.fromisoformat(config.as_of) if config.as_of else yesterday()
    days = kequn.settings.retention_days
    with kequn.connect_warehouse() as con:
        db = kequn.connect_serving()
        try:
            report = prune_snapshots(con, db, as_of=as_of, retention_days=days)
        finally:
            db.close()
    kept = [f"{r.segment or '*'} {r.as_of} ({r.by})" for r in report.kept]
    context.log.info(f"pruned snapshots before {report.cutoff}: {report.deleted}; "
                     f"kept {len(kept)} referred to")
    return dg.Output(None, metadata={
        "business_day": as_of.isoformat(),
        "cutoff": report.cutoff.isoformat(),
        "retention_days": days,
        **{f"deleted/{table}": n for table, n in report.deleted.items()},
        "kept_referred": dg.MetadataValue.md("\n".join(f"- {k}" for k in kept) or "none"),
    })


@dg.job(name=RETENTION_JOB, description="Prune tag and segment snapshots older than "
        "KEQUN_RETENTION_DAYS, except those a sync or rule order still refers to.")
def retention_job() -> None:
    prune_old_snapshots()


retention_schedule = dg.ScheduleDefinition(
    name=f"{RETENTION_JOB}_schedule",
    job=retention_job,
    cron_schedule=RETENTION_CRON,
    execution_timezone=BUSINESS_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="04:00 Asia/Shanghai: prune snapshots older than the retention window.",
)


def build_definitions(kequn: KequnContext) -> dg.Definitions:
    """The retention job and its daily schedule."""
    return dg.Definitions(jobs=[retention_job], schedules=[retention_schedule])
