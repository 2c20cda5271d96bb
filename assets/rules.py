"""Rule assets: ``rules/<name>`` per rule file, and the ``touch_dispatch`` job.

* ``rules/<name>`` (daily partitions): evaluates the rule for the day and writes its
  orders and messages (:func:`rules.run.run_rule`); coupons go through the issuance
  module's Issuer. Upstream: the trigger's inputs (``raw/loans``... or
  ``segments/<s>`` and ``sync/<s>``), ``tags/customer_tags`` and the tags it reads, and
  the sync of each campaign it issues (eligibility). Automated eagerly, like the
  campaigns' batch offers. Re-materialising a day adds nothing.
* ``touch_dispatch`` job + schedule (every 5 minutes, running by default): delivers due
  messages through the channel adapters (a file sink under ``<data_dir>/touch``, or a
  webhook given in the run config), bounded retries, opt-outs suppress.

A broken rule file is its own failing asset (:mod:`assets.broken`).
"""


import dagster as dg

from app.context import KequnContext
from app.engines import stage_tags_from_lake
from assets.broken import broken_assets
from assets.common import (
    DAILY,
    DUCKDB_POOL,
    PRELOAD,
    RULE_STEP,
    Kequn,
    as_of_day,
    serving_kind,
)
from kequn.days import BUSINESS_TIMEZONE
from plan.rules import CompiledRule
from rules.channels import FileSink, Webhook, adapters_for
from rules.dispatch import dispatch

GROUP = "rules"
DISPATCH_JOB = "touch_dispatch"
DISPATCH_CRON = "*/5 * * * *"

_RAW = {"raw.loans": "loans", "raw.installments": "installments",
        "raw.credit_applications": "credit_applications"}


def rule_key(name: str) -> dg.AssetKey:
    """``rules/<name>``."""
    return dg.AssetKey(["rules", name])


def rule_deps(compiled: CompiledRule, kequn: KequnContext) -> list[dg.AssetKey]:
    """Upstream asset keys of a rule (see the module docstring)."""
    rule = compiled.rule
    keys = [dg.AssetKey(["raw", _RAW[t]]) for t in compiled.tables if t in _RAW]
    if rule.segment:
        keys.append(dg.AssetKey(["segments", rule.segment]))
        segment = kequn.project.segments.get(rule.segment)
        if segment is not None and segment.sync is not None:
            keys.append(dg.AssetKey(["sync", rule.segment]))
    keys += [dg.AssetKey(["tags", "customer_tags"])]
    keys += [dg.AssetKey(["tags", t]) for t in compiled.tags]
    for name in rule.campaigns:
        campaign = kequn.project.campaigns.get(name)
        if campaign is not None:
            keys.append(dg.AssetKey(["sync", campaign.target_segment]))
    return list(dict.fromkeys(keys))


def _description(compiled: CompiledRule) -> str:
    rule = compiled.rule
    then = " && ".join(a.describe() for a in rule.then) or "nothing"
    text = f"On {rule.trigger.describe()}: {rule.condition.sql('duckdb')} -> {then}"
    if rule.otherwise is not None:
        text += f", else {' && '.join(a.describe() for a in rule.otherwise) or 'nothing'}"
    return f"{rule.description + '. ' if rule.description else ''}{text}."


def build_rule_asset(compiled: CompiledRule, kequn: KequnContext, kind: str
                     ) -> dg.AssetsDefinition:
    """The daily ``rules/<name>`` asset."""
    rule = compiled.rule

    @dg.asset(
        key=rule_key(rule.name),
        deps=rule_deps(compiled, kequn),
        partitions_def=DAILY,
        group_name=GROUP,
        owners=[rule.owner],
        kinds={"duckdb", kind},
        code_version=rule.version_hash,
        description=_description(compiled),
        pool=DUCKDB_POOL,
        op_tags={**RULE_STEP, PRELOAD: "rules.run,adbc_driver_sqlite.dbapi"},
        automation_condition=dg.AutomationCondition.eager(),
        metadata={
            "trigger": rule.trigger.describe(),
            "priority": rule.priority,
            "exclusion_group": rule.exclusion_group or "none",
            "holdout": rule.holdout,
            "definition": dg.MetadataValue.path(str(rule.path)),
            "compiled_sql": dg.MetadataValue.md(f"```sql\n{compiled.sql()}\n```"),
        },
    )
    def _rule(context: dg.AssetExecutionContext, kequn: Kequn) -> dg.MaterializeResult:
        from rules.run import run_rule  # polars: imported by the rule step, not every command

        day = as_of_day(context)
        group = list(kequn.plan.rules.values())
        if kequn.settings.engine == "spark":  # the tags Spark wrote to the lake
            stage_tags_from_lake(kequn, day)
        con = kequn.connect_warehouse(read_only=True)
        try:
            with kequn.issuer() as issuer:
                report = run_rule(con, issuer.db, issuer, compiled, day, group=group)
        finally:
            con.close()
        context.log.info(report.summary())
        return dg.MaterializeResult(metadata={
            "business_day": day.isoformat(),
            "dagster/row_count": sum(report.decisions.values()),
            "candidates": report.candidates,
            "already_ordered": report.already_ordered,
            **{f"orders/{k}": v for k, v in sorted(report.decisions.items())},
            "messages": report.messages,
            "suppressed": report.suppressed,
            **{f"coupons/{k}": v for k, v in sorted(report.coupons.items())},
            "version": report.version,
            "seconds": round(report.seconds, 3),
        })

    return _rule


class DispatchConfig(dg.Config):
    """Where messages go: a webhook URL, else the file sink under ``<data_dir>/touch``."""

    webhook_url: str = ""
    max_attempts: int = 3
    lease_seconds: int = 300


@dg.op(description="Deliver due touch messages through the channel adapters.")
def dispatch_touches(context: dg.OpExecutionContext, kequn: Kequn,
                     config: DispatchConfig) -> dg.Output:
    """One dispatch pass; logs what it delivered."""
    default = (Webhook(config.webhook_url) if config.webhook_url
               else FileSink(kequn.settings.data_dir / "touch"))
    db = kequn.connect_serving()
    try:
        report = dispatch(db, adapters_for(default), max_attempts=config.max_attempts,
                          lease_s=config.lease_seconds)
    finally:
        db.close()
    for error in report.errors[:20]:
        context.log.warning(f"delivery failed: {error}")
    context.log.info(report.summary())
    return dg.Output(None, metadata={"claimed": report.claimed, "sent": report.sent,
                                     "retried": report.retried, "failed": report.failed,
                                     "suppressed": report.suppressed})


@dg.job(name=DISPATCH_JOB, description="Deliver due touch messages (each once).")
def dispatch_job() -> None:
    dispatch_touches()


dispatch_schedule = dg.ScheduleDefinition(
    name=f"{DISPATCH_JOB}_schedule",
    job=dispatch_job,
    cron_schedule=DISPATCH_CRON,
    execution_timezone=BUSINESS_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every 5 minutes: deliver the touch messages that are due.",
)


def build_definitions(kequn: KequnContext) -> dg.Definitions:
    """Rule assets (broken ones failing), the dispatch job and its schedule."""
    kind = serving_kind(kequn.settings.serving_url)
    assets = [build_rule_asset(c, kequn, kind) for _, c in sorted(kequn.plan.rules.items())]
    broken = list(kequn.project.broken_of("rule").values())
    return dg.Definitions(assets=[*assets, *broken_assets(broken)], jobs=[dispatch_job],
                          schedules=[dispatch_schedule])
