"""Segment assets: one daily-partitioned ``segments/<name>`` asset per definition file.

Each asset writes the segment's members for the partition day into
``segments.members`` and reports size, added/removed against the previous day, the
compiled SQL and a sample of ids (size, entered and left also go to
``segments.history``, :mod:`app.segment_history`). Two blocking checks run with it: size bounds
(default: not empty) and the day-over-day change guard (default: size moved by at
most 50%), so an empty or collapsed segment never flows on to its sync.

Lineage: a rule depends on exactly the ``tags/<tag>`` assets it references and on
``tags/customer_tags`` (it reads the wide table); a combine on its segments; a SQL
segment on the raw/tag tables it reads; a file segment on ``raw/customers``. A broken
segment file is its own failing asset (:mod:`assets.broken`). Assets are made from the
compiled plan; no database is opened at load time.
"""


from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from app.context import KequnContext
from app.engines import SessionSource, build_segment_on
from app.segment_history import history_row, record_history
from assets.broken import broken_assets
from assets.common import (
    DAILY,
    DUCKDB_POOL,
    FEEDS_ISSUANCE,
    PRELOAD,
    WAREHOUSE_STEP,
    as_of_day,
    issuance_segments,
)
from assets.spark import on_engine_with_config
from plan.segments import CompiledSegment
from segments.materialize import MemberStats

if TYPE_CHECKING:
    import duckdb

GROUP = "segments"
CHECK_SIZE = "size_bounds"
CHECK_CHANGE = "day_over_day_change"


def segment_key(name: str) -> dg.AssetKey:
    """``segments/<name>``."""
    return dg.AssetKey(["segments", name])


class SegmentBuildConfig(dg.Config):
    """Run configuration: an uploaded file to import first (set by the imports sensor)."""

    import_file: str = ""


def segment_deps(compiled: CompiledSegment) -> list[dg.AssetKey]:
    """Upstream asset keys of a segment (see the module docstring)."""
    segment = compiled.segment
    if segment.kind == "rule":
        return [dg.AssetKey(["tags", t]) for t in compiled.tags] + [
            dg.AssetKey(["tags", "customer_tags"])]
    if segment.kind == "combine":
        return [segment_key(s) for s in compiled.segments]
    if segment.kind == "file":
        return [dg.AssetKey(["raw", "customers"])]
    keys = []
    for table in compiled.tables:
        schema, name = table.split(".", 1)
        if (schema, name) != ("segments", "members"):
            keys.append(dg.AssetKey([schema, name]))
    return keys


def check_results(compiled: CompiledSegment, stats: MemberStats) -> list[dg.AssetCheckResult]:
    """Size bounds and the day-over-day change guard for one materialisation."""
    checks = compiled.segment.checks
    key = segment_key(compiled.segment.name)
    low, high = checks.min_size, checks.max_size
    size_ok = stats.size >= low and (high is None or stats.size <= high)
    bounds = f"[{low}, {high if high is not None else '∞'}]"
    ratio = stats.change_ratio
    limit = checks.max_change_ratio
    change_ok = ratio is None or limit is None or ratio <= limit
    if ratio is None:
        change_text = "no earlier non-empty day to compare with"
    else:
        change_text = (f"size {stats.previous_size} on {stats.previous_day} -> {stats.size}: "
                       f"changed {ratio:.1%} (limit {limit:.0%})" if limit is not None
                       else f"changed {ratio:.1%} (no limit)")
    return [
        dg.AssetCheckResult(
            asset_key=key, check_name=CHECK_SIZE, passed=size_ok,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(f"size {stats.size} within {bounds}" if size_ok else
                         f"size {stats.size} < min_size {low}" if stats.size < low else
                         f"size {stats.size} > max_size {high}"),
            metadata=_present({"size": stats.size, "min_size": low, "max_size": high})),
        dg.AssetCheckResult(
            asset_key=key, check_name=CHECK_CHANGE, passed=change_ok,
            severity=dg.AssetCheckSeverity.ERROR, description=change_text,
            metadata=_present({
                "change_ratio": float(ratio) if ratio is not None else None,
                "max_change_ratio": float(limit) if limit is not None else None})),
    ]


def _present(metadata: dict) -> dict:
    """``metadata`` without the entries that have no value (never a -1 placeholder)."""
    return {key: value for key, value in metadata.items() if value is not None}


def _metadata(compiled: CompiledSegment, stats: MemberStats, elapsed: float,
              as_of: date) -> dict:
    return _present({
        "business_day": as_of.isoformat(),
        "dagster/row_count": stats.size,
        "size": stats.size,
        "entered": stats.added,
        "left": stats.removed,
        "added": stats.added,
        "removed": stats.removed,
        "previous_day": str(stats.previous_day) if stats.previous_day else None,
        "previous_size": stats.previous_size,
        "compiled_sql": dg.MetadataValue.md(f"```sql\n{compiled.sql('duckdb')}\n```"),
        "sample_ids": dg.MetadataValue.json([int(i) for i in stats.sample]),
        "seconds": round(elapsed, 3),
    })


def build_segment_asset(compiled: CompiledSegment, *, spark: bool = False,
                        feeds_issuance: bool = False) -> dg.AssetsDefinition:
    """The ``segments/<name>`` asset with its two blocking checks (``feeds_issuance``: a
    campaign's batch waits for it, :data:`assets.common.FEEDS_ISSUANCE`)."""
    segment = compiled.segment
    key = segment_key(segment.name)
    check_specs = [
        dg.AssetCheckSpec(CHECK_SIZE, asset=key, blocking=True,
                          description=f"Size within [{segment.checks.min_size}, "
                          f"{segment.checks.max_size or '∞'}]."),
        dg.AssetCheckSpec(CHECK_CHANGE, asset=key, blocking=True,
                          description="Size moved at most "
                          + (f"{segment.checks.max_change_ratio:.0%}"
                             if segment.checks.max_change_ratio is not None else "(no limit)")
                          + " from the previous materialised day."),
    ]
    kinds = {"duckdb", "sql"} if segment.kind != "file" else {"duckdb", "csv"}

    decorate = dg.asset(
        key=key,
        partitions_def=DAILY,
        deps=segment_deps(compiled),
        owners=[segment.owner],
        description=segment.description or f"{segment.kind} segment {segment.name}",
        code_version=segment.definition_hash,
        kinds=kinds,
        group_name=GROUP,
        pool=DUCKDB_POOL,
        op_tags={**(FEEDS_ISSUANCE if feeds_issuance else WAREHOUSE_STEP),
                 # an analyst's query runs in its own process: started ahead of the step
                 PRELOAD: "segments.build" + (",segments.sandbox:prestart"
                                              if segment.kind == "sql" else "")},
        check_specs=check_specs,
        tags={"segment_kind": segment.kind},
        metadata={
            "segment_kind": segment.kind,
            "shared_with": ", ".join(segment.shared_with) or "none",
            "definition": dg.MetadataValue.path(str(segment.path)),
            "compiled_sql": dg.MetadataValue.md(f"```sql\n{compiled.sql('duckdb')}\n```"),
        },
    )
    def _segment(context: dg.AssetExecutionContext, kequn: KequnContext,
                 config: SegmentBuildConfig,
                 session: SessionSource | None) -> dg.MaterializeResult:
        as_of = as_of_day(context)
        import_path = Path(config.import_file) if config.import_file else None

        def record(con: "duckdb.DuckDBPyConnection", stats: MemberStats) -> None:
            record_history(con, segment.name, history_row(as_of, stats))  # either engine

        result = build_segment_on(kequn, compiled, as_of, import_path=import_path,
                                  session=session, then=record)
        metadata = _metadata(compiled, result.stats, result.elapsed_s, as_of)
        if result.import_report is not None:
            report = result.import_report
            metadata["import"] = report.summary()
            if report.report_path is not None:
                metadata["import_report"] = dg.MetadataValue.path(str(report.report_path))
        context.log.info(f"{segment.name} {as_of}: {result.stats.size} members "
                         f"(+{result.stats.added} / -{result.stats.removed})")
        return dg.MaterializeResult(metadata=metadata,
                                    check_results=check_results(compiled, result.stats))

    return decorate(on_engine_with_config(_segment, SegmentBuildConfig, spark=spark))


def build_definitions(kequn: KequnContext) -> dg.Definitions:
    """Every segment asset of the compiled plan, and the broken segments' assets."""
    spark = kequn.settings.engine == "spark"
    feeding = issuance_segments(kequn)
    assets = [build_segment_asset(compiled, spark=spark, feeds_issuance=name in feeding)
              for name, compiled in sorted(kequn.plan.segments.items())]
    broken = list(kequn.project.broken_of("segment").values())
    return dg.Definitions(assets=[*assets, *broken_assets(broken)])
