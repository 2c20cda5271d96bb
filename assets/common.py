"""What every kequn asset shares: daily partitions, the DuckDB pool and the ``kequn`` resource.

Conventions (architecture §9): asset keys ``raw/<table>``, ``tags/<name>``,
``segments/<name>``, ``sync/<name>``, ``issuance/<campaign>``; partitions are business
days in Asia/Shanghai; every asset or check that touches the DuckDB warehouse runs in the
``duckdb`` pool (limit 1, set in ``dagster.yaml``) because DuckDB allows one writer
process per file, and within a run in the warehouse lane (:data:`WAREHOUSE_LANE`), one
step at a time beside the steps that work in the serving database alone. Assets reach
settings, the compiled plan and connections through one resource, ``kequn``: the
application's :class:`~app.context.KequnContext`.
"""

from __future__ import annotations

from datetime import date

import dagster as dg

from app.context import KequnContext
from kequn.days import BUSINESS_TIMEZONE

PARTITION_START = "2024-01-01"
DUCKDB_POOL = "duckdb"
WAREHOUSE_LANE = "kequn/lane"
"""The op tag of every step that touches the DuckDB warehouse (value ``warehouse``): the
run's executor runs one such step at a time (:mod:`dagster_project.executor`)."""
PRELOAD = "kequn/preload"
"""The op tag naming the modules a step imports only when it runs (comma-separated; they
are left out of every command's start): the run's executor imports them in the
background while its first steps work (:mod:`dagster_project.executor`). An entry
``module:function`` also calls that function there, to start something the step will use
(it must be cheap to call when the step never runs)."""
WAREHOUSE_STEP = {WAREHOUSE_LANE: "warehouse", "dagster/priority": "1"}
"""``op_tags`` of an asset in the ``duckdb`` pool that works in the warehouse alone (the
tag build, a segment). Ready warehouse steps start in the order of their priority:"""
TAG_BUILD = {WAREHOUSE_LANE: "warehouse", "dagster/priority": "3"}
"""first the tag build, the longest step (the modules of the later steps are imported
while it works);"""
FEEDS_ISSUANCE = {WAREHOUSE_LANE: "warehouse", "dagster/priority": "2"}
"""then the steps a campaign's batch waits for (its segment and that segment's sync), so
the batch, which works in the serving database alone, runs beside the rest;"""
WRITES_SERVING = {WAREHOUSE_LANE: "warehouse"}
"""then another segment's sync, which plans in the warehouse before it waits for the
serving database's write lock (the batch may hold it) to apply;"""
RULE_STEP = {WAREHOUSE_LANE: "warehouse", "dagster/priority": "-1"}
"""last the rules: they read little from the warehouse and then write the serving
database, so started earlier they would wait for the batch's lock, holding up the lane."""

RESOURCE = "kequn"
"""The resource key of the :class:`KequnContext` every asset uses."""

DAILY = dg.DailyPartitionsDefinition(start_date=PARTITION_START, timezone=BUSINESS_TIMEZONE)
"""What area modules declare; the code location replaces it with :func:`daily_partitions`
of the configured first business day (``Settings.first_day``) in one place."""


def daily_partitions(first_day: date) -> dg.DailyPartitionsDefinition:
    """Business days (Asia/Shanghai) from ``first_day`` to yesterday."""
    return dg.DailyPartitionsDefinition(start_date=first_day.isoformat(),
                                        timezone=BUSINESS_TIMEZONE)


def first_partition_day(partitions: dg.PartitionsDefinition) -> date:
    """The first business day of a daily partitions definition."""
    assert isinstance(partitions, dg.TimeWindowPartitionsDefinition)
    return date.fromisoformat(partitions.start.strftime("%Y-%m-%d"))

Kequn = dg.ResourceParam[KequnContext]
"""The type of an asset's ``kequn`` parameter."""


def as_of_day(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext | dg.OpExecutionContext,
) -> date:
    """The business day (as-of D) of the partition being materialised."""
    return date.fromisoformat(context.partition_key)


def serving_kind(url: str) -> str:
    """The Dagster kind of the serving database at ``url``: ``postgres`` or ``sqlite``."""
    return "postgres" if url.startswith("postgres") else "sqlite"


def issuance_segments(kequn: KequnContext) -> set[str]:
    """The segments a campaign's batch waits for: the target segment of each campaign
    with a batch offer and, for a combination, the segments it combines (all the way
    down). (A campaign without one is issued by rules.)"""
    plan = kequn.plan.segments
    waiting = [c.target_segment for c in kequn.project.campaigns.values() if c.batch_offer]
    found: set[str] = set()
    while waiting:
        name = waiting.pop()
        if name in found:
            continue
        found.add(name)
        compiled = plan.get(name)
        if compiled is not None:
            waiting.extend(compiled.segments)
    return found
