"""Issuance assets: ``issuance/<campaign>`` batch offers and the coupon expiry job.

* ``issuance/<campaign>`` (daily partitions, depends on ``sync/<target segment>``):
  offers one coupon to every customer currently eligible for the campaign, with
  idempotency keys derived from (campaign, customer, partition day), so re-materialising
  a day is a no-op. Every limit applies as for single issues. Metadata: eligible,
  issued, already issued by an earlier run, refused by reason. Only a live campaign
  issues: for one that is not (not approved and launched yet, ended, or its file changed
  since approval) the asset still materialises, with ``not_live`` saying why and
  ``refused/not_live`` counting the requests refused; nothing is recorded under their
  keys, so materialising the same day again once the campaign is live issues them.
* ``issuance_after_sync`` sensor (running by default, nothing to switch on): when a
  ``sync/<segment>`` partition is materialised (applied or no-op; a blocked sync fails and
  materialises nothing; a skipped older day is ignored), it requests the ``issuance`` job
  for every campaign targeting that segment, for that business day. Run keys
  ``issue_<campaign>_<day>`` and the idempotency keys make a repeated request harmless.
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
from issuance.approval import read_state, why_not_live
from issuance.batch import issue_batch
from issuance.limits import NOT_LIVE
from issuance.service import Issuer
from kequn.days import BUSINESS_TIMEZONE
from project.campaign import Campaign

GROUP = "issuance"
ISSUANCE_JOB = "issuance"
ISSUANCE_SENSOR = "issuance_after_sync"
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
            not_live = why_not_live(read_state(db, campaign.name), campaign)
        finally:
            db.close()
        refused = dict(sorted(report.refused.items()))
        context.log.info(
            f"{campaign.name} {day}: {report.issued} issued, {report.replayed_issued} already "
            f"issued, refused {refused or 'none'} of {report.eligible} eligible"
        )
        extra = {}
        if report.refused.get(NOT_LIVE):
            extra["not_live"] = (f"not live: {report.refused[NOT_LIVE]} requests refused "
                                 f"({not_live}); materialise this day again once it is live")
            context.log.warning(f"{campaign.name} {day}: {extra['not_live']}")
        return dg.MaterializeResult(metadata={**extra,
            "business_day": day.isoformat(),
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


def build_issuance_sensor(campaigns: dict[str, Campaign],
                          job: "dg.UnresolvedAssetJobDefinition") -> dg.SensorDefinition:
    """``issuance_after_sync``: issue each campaign's day once its segment's sync landed.

    The cursor is the storage id of the last sync materialisation seen; each new one
    (status ``applied`` or ``noop``) yields one run request per campaign on its segment.
    """
    by_segment: dict[str, list[str]] = {}
    for campaign in sorted(campaigns.values(), key=lambda c: c.name):
        by_segment.setdefault(campaign.target_segment, []).append(campaign.name)

    @dg.sensor(name=ISSUANCE_SENSOR, job=job, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Issue each campaign's coupons for a day once its segment's "
               "sync for that day has landed.")
    def _after_sync(context: dg.SensorEvaluationContext):  # type: ignore[no-untyped-def]
        after = int(context.cursor) if context.cursor else None
        newest = after or 0
        requests = []
        for segment, names in sorted(by_segment.items()):
            records = context.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=dg.AssetKey(["sync", segment]),
                                      after_storage_id=after),
                limit=1000, ascending=True).records
            for record in records:
                newest = max(newest, record.storage_id)
                materialization = record.asset_materialization
                day = record.partition_key
                if materialization is None or day is None:
                    continue
                status = materialization.metadata.get("status")
                if status is not None and status.value not in ("applied", "noop"):
                    continue
                for name in names:
                    requests.append(dg.RunRequest(
                        run_key=f"issue_{name}_{day}", partition_key=day,
                        asset_selection=[issuance_key(name)],
                        tags={"kequn/trigger": f"sync/{segment}"}))
        if not requests and newest == (after or 0):
            return dg.SkipReason("no new sync of a segment a campaign targets")
        return dg.SensorResult(run_requests=requests, cursor=str(newest))

    return _after_sync


def build_definitions(kequn: KequnContext) -> dg.Definitions:
    """Campaign batch assets (broken ones failing; none for a campaign with
    ``batch_offer false``, whose coupons rules issue), the issuance job and its sensor,
    the expiry job and its schedule."""
    kind = serving_kind(kequn.settings.serving_url)
    campaigns = {n: c for n, c in kequn.project.campaigns.items() if c.batch_offer}
    broken = list(kequn.project.broken_of("campaign").values())
    jobs: list = [expiry_job]
    sensors = []
    if campaigns:
        issuance_job = dg.define_asset_job(
            ISSUANCE_JOB, selection=dg.AssetSelection.assets(
                *(issuance_key(n) for n in sorted(campaigns))),
            description="Offer each campaign's coupons for a day (the sensor picks the "
            "campaigns whose segment was just synced).")
        jobs.append(issuance_job)
        sensors.append(build_issuance_sensor(campaigns, issuance_job))
    return dg.Definitions(
        assets=[*(build_campaign_asset(c, kind) for c in campaigns.values()),
                *broken_assets(broken)],
        jobs=jobs,
        schedules=[expiry_schedule],
        sensors=sensors,
    )
