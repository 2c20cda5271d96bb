"""Issuance assets: ``issuance/<campaign>`` batch offers and the coupon expiry job.

* ``issuance/<campaign>`` (daily partitions, depends on ``sync/<target segment>``):
  offers one coupon to every customer currently eligible for the campaign, with
  idempotency keys derived from (campaign, customer, partition day), so re-materialising
  a day is a no-op. Every limit applies as for single issues. Metadata: eligible,
  issued, already issued by an earlier run, refused by reason. It is automated eagerly:
  when the segment's sync lands, the automation sensor (if running) issues that day.
* ``issuance_expiry`` job + ``issuance_expiry_schedule`` (every 10 minutes, running by
  default): releases ended leases and expires coupons past validity. Reads enforce the
  same rules in between, so a late tick never lets an expired coupon be used.

A broken campaign file is its own failing asset (:mod:`assets.broken`). Made from the
loaded project; no database is opened at load time.
"""

import dagster as dg

from app.context import KequnContext
from assets.broken import broken_assets
from assets.common import DAILY, Kequn, as_of_day, serving_kind
from issuance.batch import issue_batch
from issuance.service import Issuer
from kequn.days import BUSINESS_TIMEZONE
from project.campaign import Campaign

GROUP = "issuance"
EXPIRY_JOB = "issuance_expiry"
EXPIRY_CRON = "*/10 * * * *"


def issuance_key(name: str) -> dg.AssetKey:
    """``issuance/<campaign>``."""
    return dg.AssetKey(["issuance", name])


def _description(c: Campaign) -> str:
    title = f"{c.title}: " if c.title else ""
    return (
        f"{title}offer one {c.template.describe()} coupon ({c.type} campaign) to every "
        f"customer eligible through segment '{c.target_segment}'. Stock {c.total_stock}, "
        f"daily limit {c.daily_limit or 'none'}, {c.per_customer_limit} per customer, "
        f"{c.stacking}. {c.rules}".strip()
    )


def build_campaign_asset(campaign: Campaign, kind: str) -> dg.AssetsDefinition:
    """The daily batch-offer asset of one campaign."""

    @dg.asset(
        key=issuance_key(campaign.name),
        deps=[dg.AssetKey(["sync", campaign.target_segment])],
        partitions_def=DAILY,
        group_name=GROUP,
        owners=[campaign.owner] if campaign.owner else None,
        kinds={kind},
        code_version=campaign.definition_hash,
        description=_description(campaign),
        automation_condition=dg.AutomationCondition.eager(),
        metadata={
            "campaign": campaign.name,
            "type": campaign.type,
            "target_segment": campaign.target_segment,
            "coupon": campaign.template.describe(),
            "validity": campaign.validity.describe(),
            "window": f"{campaign.window_start.isoformat()} .. {campaign.window_end.isoformat()}",
            "definition": str(campaign.path),
        },
    )
    def _issue(context: dg.AssetExecutionContext, kequn: Kequn) -> dg.MaterializeResult:
        day = as_of_day(context)
        db = kequn.connect_serving()
        try:
            report = issue_batch(Issuer(db, {campaign.name: campaign}), campaign, day)
        finally:
            db.close()
        refused = dict(sorted(report.refused.items()))
        context.log.info(
            f"{campaign.name} {day}: {report.issued} issued, {report.replayed_issued} already "
            f"issued, refused {refused or 'none'} of {report.eligible} eligible"
        )
        return dg.MaterializeResult(metadata={
            "eligible": report.eligible,
            "issued": report.issued,
            "already_issued": report.replayed_issued,
            "refused": sum(refused.values()),
            **{f"refused/{reason}": n for reason, n in refused.items()},
            "dagster/row_count": report.total_issued,
        })

    return _issue


@dg.op(description="Release ended coupon leases and expire coupons past validity.")
def expire_coupons(context: dg.OpExecutionContext, kequn: Kequn) -> dg.Output:
    """Run one expiry pass and log what it changed."""
    with kequn.issuer(with_campaigns=False) as issuer:
        report = issuer.expire()
    context.log.info(f"released {report.released} lease(s), expired {report.expired} coupon(s)")
    return dg.Output(None, metadata={"released": report.released, "expired": report.expired})


@dg.job(name=EXPIRY_JOB, description="Release ended leases; expire coupons past validity.")
def expiry_job() -> None:
    expire_coupons()


expiry_schedule = dg.ScheduleDefinition(
    name=f"{EXPIRY_JOB}_schedule",
    job=expiry_job,
    cron_schedule=EXPIRY_CRON,
    execution_timezone=BUSINESS_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 10 minutes: coupon leases and validity.",
)


def build_definitions(kequn: KequnContext) -> dg.Definitions:
    """Campaign batch assets (broken ones failing; none for a campaign with
    ``batch_offer false``, whose coupons rules issue), the expiry job and its schedule."""
    kind = serving_kind(kequn.settings.serving_url)
    campaigns = {n: c for n, c in kequn.project.campaigns.items() if c.batch_offer}
    broken = list(kequn.project.broken_of("campaign").values())
    return dg.Definitions(
        assets=[*(build_campaign_asset(c, kind) for c in campaigns.values()),
                *broken_assets(broken)],
        jobs=[expiry_job],
        schedules=[expiry_schedule],
    )
