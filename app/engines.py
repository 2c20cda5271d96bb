"""The engine switch (``Settings.engine``): building a day's tags and segments on DuckDB or
on Spark over the lake, with the same compiled plan (DESIGN §10).

The command line, the Dagster assets and the parity check call these functions; on
``duckdb`` they are the existing engines (:mod:`tags.build`, :mod:`segments.build`), on
``spark`` :class:`spark_engine.engine.SparkEngine`. File segments are matched by the DuckDB
import on both engines; on Spark their members are then written to the lake. The sync reads
a Spark-built segment from the lake (:func:`stage_from_lake`), so it and issuance do not
change.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import pyarrow as pa

from kequn.errors import ExecutionError, Location
from kequn.lake import Lake
from plan.segments import CompiledSegment

if TYPE_CHECKING:
    from app.context import KequnContext
    from spark_engine.engine import SparkEngine


def lake_of(kequn: KequnContext) -> Lake:
    """The lake of the run's settings."""
    return Lake(kequn.settings.lake_dir)


@contextmanager
def spark_engine(kequn: KequnContext, app_name: str = "kequn") -> Iterator[SparkEngine]:
    """One Spark session for the block (started from the settings, stopped after)."""
    from spark_engine.engine import SparkEngine
    from spark_engine.session import start_session, stop_session

    spark = start_session(kequn.settings, app_name)
    try:
        yield SparkEngine(spark, lake_of(kequn), kequn.plan.tags)
    finally:
        stop_session(spark)


def export_lake(kequn: KequnContext) -> dict[str, int]:
    """Write the warehouse's raw tables to ``<lake>/raw/<table>/``; rows per table."""
    from warehouse.lake import export_raw

    with kequn.connect_warehouse() as con:
        return export_raw(con, lake_of(kequn))


def segment_order(segments: dict[str, CompiledSegment]) -> list[str]:
    """Segment names with every combine after the segments it reads."""
    done: list[str] = []

    def visit(name: str, seen: tuple[str, ...] = ()) -> None:
        if name in done or name not in segments or name in seen:
            return
        for child in segments[name].segments:
            visit(child, (*seen, name))
        done.append(name)

    for name in sorted(segments):
        visit(name)
    return done


@dataclass(frozen=True)
class DayBuild:
    """What one engine built for one day: rows of the wide table, size of each segment."""

    engine: str
    day: date
    customers: int
    sizes: dict[str, int]


def build_day_duckdb(kequn: KequnContext, day: date) -> DayBuild:
    """Every tag and segment for ``day`` in the DuckDB warehouse."""
    from segments.build import build_segment
    from tags.build import build_customer_tags, build_tags

    plan = kequn.plan
    with kequn.connect_warehouse() as con:
        build_tags(con, plan.tags, day)
        customers = build_customer_tags(con, plan.tags, day).rows
    sizes = {}
    for name in segment_order(plan.segments):
        result = build_segment(kequn.warehouse, plan.segments[name], day,
                               sandbox=kequn.sandbox_limits,
                               max_bytes=kequn.settings.import_max_bytes,
                               report_dir=kequn.reports_dir)
        sizes[name] = result.stats.size
    return DayBuild("duckdb", day, customers, sizes)


def build_file_segment_to_lake(kequn: KequnContext, engine: SparkEngine,
                               compiled: CompiledSegment, day: date) -> int:
    """A file segment on Spark: matched by the DuckDB import (as on DuckDB), its members
    for ``day`` then written to the lake."""
    from segments.build import build_segment
    from warehouse.db import run

    build_segment(kequn.warehouse, compiled, day, sandbox=kequn.sandbox_limits,
                  max_bytes=kequn.settings.import_max_bytes, report_dir=kequn.reports_dir)
    with kequn.connect_warehouse(read_only=True) as con:
        rows = run(con, compiled.query, day).fetchall()
    ids = pa.table({"customer_id": pa.array([r[0] for r in rows], pa.int64())})
    return engine.write_ids(compiled.segment.name, day, ids)


def build_segment_spark(kequn: KequnContext, engine: SparkEngine, compiled: CompiledSegment,
                        day: date) -> int:
    """One segment for ``day`` on Spark (a file segment through the DuckDB import)."""
    if compiled.segment.kind == "file":
        return build_file_segment_to_lake(kequn, engine, compiled, day)
    return engine.build_segment(compiled, day, timeout_s=kequn.settings.sandbox_timeout_s)


def build_day_spark(kequn: KequnContext, engine: SparkEngine, day: date) -> DayBuild:
    """Every tag and segment for ``day`` on Spark, into the lake."""
    plan = kequn.plan
    engine.build_tags(plan.tags, day)
    customers = engine.build_customer_tags(plan.tags, day)
    sizes = {name: build_segment_spark(kequn, engine, plan.segments[name], day)
             for name in segment_order(plan.segments)}
    return DayBuild("spark", day, customers, sizes)


def stage_from_lake(kequn: KequnContext, segment: str, day: date) -> int:
    """Copy a Spark-built segment's lake partition for ``day`` into the warehouse's
    ``segments.members`` (one transaction), so the sync reads the lake's snapshot; its size.

    Raises ExecutionError when the lake has no such partition (not built on Spark).
    """
    from segments.materialize import write_members
    from warehouse.lake import read_members

    compiled = kequn.plan.segments.get(segment)
    with kequn.connect_warehouse() as con:
        ids = read_members(con, lake_of(kequn), segment, day)
        if ids is None:
            raise ExecutionError(
                f"segment '{segment}' has no lake partition for {day} "
                f"({lake_of(kequn).members_partition(segment, day)}); build it on Spark first",
                Location(compiled.segment.path if compiled else None))
        stats = write_members(con, segment, day, ids=ids, definition_hash=(
            compiled.segment.definition_hash if compiled else ""))
    return stats.size
