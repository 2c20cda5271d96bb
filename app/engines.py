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

from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from app.segment_history import HistoryRow, history_row
from kequn.errors import ExecutionError, Location
from kequn.lake import Lake, has_parquet
from kequn.tables import CATALOG, CUSTOMER_TAGS, DISTRIBUTION, MEMBERS, qualified
from plan.segments import CompiledSegment

if TYPE_CHECKING:
    import duckdb
    from pyspark.sql import SparkSession

    from app.context import KequnContext
    from plan.tags import TagPlan
    from project.tag import Tag
    from segments.build import BuildResult
    from segments.imports import ImportReport
    from segments.materialize import MemberStats
    from spark_engine.engine import SparkEngine
    from tags.build import CustomerTagsResult
    from tags.distribution import Bucket


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
    """What one engine built for one day: rows of the wide table, size of each segment and
    its history row (size, entered, left against the previous built day)."""

    engine: str
    day: date
    customers: int
    sizes: dict[str, int]
    history: dict[str, HistoryRow] = field(default_factory=dict)


def build_day_duckdb(kequn: KequnContext, day: date) -> DayBuild:
    """Every tag and segment for ``day`` in the DuckDB warehouse, with the day's tag
    distributions and segment history rows recorded as the assets record them."""
    from app.segment_history import record_history
    from segments.build import build_segment

    plan = kequn.plan
    with DuckDBTags(kequn).open() as tags:
        result = tags.build_day(plan.tags, day)
        tags.record_distributions(plan.tags.built, day, result.distributions)
        customers = result.rows
    sizes, history = {}, {}
    for name in segment_order(plan.segments):
        def record(con: duckdb.DuckDBPyConnection, stats: MemberStats, name: str = name) -> None:
            history[name] = history_row(day, stats)
            record_history(con, name, history[name])

        result = build_segment(kequn.warehouse, plan.segments[name], day,
                               sandbox=kequn.sandbox_limits,
                               max_bytes=kequn.settings.import_max_bytes,
                               report_dir=kequn.reports_dir, then=record)
        sizes[name] = result.stats.size
    return DayBuild("duckdb", day, customers, sizes, history)


def build_file_segment_to_lake(kequn: KequnContext, engine: SparkEngine | None,
                               compiled: CompiledSegment, day: date, *,
                               import_path: Path | None = None) -> ImportReport | None:
    """A file segment on Spark: matched by the DuckDB import (as on DuckDB), its members
    for ``day`` then written to the lake; the import's report, if it imported."""
    import pyarrow as pa

    from segments.build import build_segment
    from spark_engine.engine import write_ids
    from warehouse.db import run

    result = build_segment(kequn.warehouse, compiled, day, import_path=import_path,
                           sandbox=kequn.sandbox_limits,
                           max_bytes=kequn.settings.import_max_bytes,
                           report_dir=kequn.reports_dir)
    with kequn.connect_warehouse(read_only=True) as con:
        rows = run(con, compiled.query, day).fetchall()
    ids = pa.table({"customer_id": pa.array([r[0] for r in rows], pa.int64())})
    write_ids(lake_of(kequn), compiled.segment.name, day, ids)
    return result.import_report


def build_day_spark(kequn: KequnContext, engine: SparkEngine, day: date) -> DayBuild:
    """Every tag and segment for ``day`` on Spark, into the lake, with the day's tag
    distributions (``tags/distribution/as_of=D``) and each segment's history row computed
    from the lake's members (nothing is written to the warehouse but file imports)."""
    from warehouse.lake import load_day, mirror

    plan = kequn.plan
    engine.build_tags(plan.tags, day)
    customers = engine.build_customer_tags(plan.tags, day)
    lake = lake_of(kequn)
    with closing(mirror()) as con:
        load_day(con, qualified(CUSTOMER_TAGS), lake.wide_partition(day), day)
        distributions_to_lake(con, lake, plan.tags.built, day)
    sizes, history = {}, {}
    for name in segment_order(plan.segments):
        stats = build_segment_spark(kequn, lambda: engine.spark, plan.segments[name], day).stats
        sizes[name], history[name] = stats.size, history_row(day, stats)
    return DayBuild("spark", day, customers, sizes, history)


def distributions_to_lake(con: duckdb.DuckDBPyConnection, lake: Lake, tags: Mapping[str, Tag],
                          day: date) -> dict[str, list[Bucket]]:
    """Each tag's distribution for ``day`` (:mod:`tags.distribution`, the one definition of
    top values and quartile buckets) over the wide table Spark wrote, loaded into the mirror
    ``con``; stored there and written to ``tags/distribution/as_of=D`` in the lake."""
    from tags.distribution import store_distributions, tag_distributions
    from warehouse.lake import save_day

    distributions = tag_distributions(con, tags, day)
    store_distributions(con, day, distributions)
    save_day(con, qualified(DISTRIBUTION), lake.day_partition(DISTRIBUTION, day), day, lake)
    return distributions


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



def stage_tags_from_lake(kequn: KequnContext, day: date) -> None:
    """Copy the lake's wide tag table for ``day`` into the warehouse's ``tags.customer_tags``
    (which then holds that day only), so DuckDB readers such as the rules read the tags
    Spark built. Raises ExecutionError when the lake has no partition for ``day``."""
    from kequn.tables import CUSTOMER_TAGS, qualified
    from warehouse.lake import load_day

    folder = lake_of(kequn).wide_partition(day)
    with kequn.connect_warehouse() as con:
        if not load_day(con, qualified(CUSTOMER_TAGS), folder, day):
            raise ExecutionError(
                f"the tags of {day} are not in the lake ({folder}); build them on Spark "
                f"first: kequn materialize --as-of {day} --select 'key:tags/*'", Location())

@contextmanager
def tags_reader(kequn: KequnContext) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only DuckDB connection whose ``tags.customer_tags`` holds every built day of
    the configured engine: the warehouse on ``duckdb``; on ``spark`` an in-memory DuckDB
    with ``tags.customer_tags`` a view over all of the lake's wide partitions (readers over
    several days, such as rule uplift, see each day, not only the last one staged).

    Raises ExecutionError on spark when the lake holds no wide table yet.
    """
    if kequn.settings.engine != "spark":
        with kequn.connect_warehouse(read_only=True) as con:
            yield con
        return
    from warehouse.lake import mirror, parquet_relation

    folder = lake_of(kequn).table(CUSTOMER_TAGS)
    if not has_parquet(folder):
        raise ExecutionError(f"no tags in the lake yet ({folder}); build them on Spark "
                             "first: kequn materialize --select 'key:tags/*'", Location(folder))
    with closing(mirror()) as con:
        con.execute(f"CREATE VIEW {qualified(CUSTOMER_TAGS)} AS SELECT * REPLACE "
                    f"(CAST(as_of AS DATE) AS as_of) FROM {parquet_relation(folder)}")
        yield con


# -- the engine the tag and segment assets call ----------------------------------------
SessionSource = Callable[[], "SparkSession"]
"""Gives the run's Spark session (started on first use by the Dagster resource)."""


class DuckDBTags:
    """Tags built in the DuckDB warehouse (:mod:`tags.build`); ``con`` is the warehouse."""

    def __init__(self, kequn: KequnContext):
        self.kequn = kequn
        self.con: duckdb.DuckDBPyConnection | None = None

    @contextmanager
    def open(self) -> Iterator[DuckDBTags]:
        """The warehouse connection for the block."""
        with self.kequn.connect_warehouse() as con:
            self.con = con
            yield self

    stored_groups = False
    """Whether each tag group's rows are stored in its own table (``TagGroup.table``)."""

    def build_day(self, plan: TagPlan, day: date,
                  compute: list[str] | None = None) -> CustomerTagsResult:
        """See :func:`tags.build.build_day`."""
        from tags.build import build_day

        return build_day(self.con, plan, day, compute)

    def record_distributions(self, tags: Mapping[str, Tag], day: date,
                             known: dict[str, list[Bucket]] | None = None
                             ) -> dict[str, list[Bucket]]:
        """Each tag's distribution for ``day`` (``known``: what the wide build's scan
        already computed, else one pass over the wide table), stored in
        ``tags.distribution`` (:mod:`tags.distribution`)."""
        from tags.distribution import store_distributions, tag_distributions

        distributions = known or tag_distributions(self.con, tags, day)
        store_distributions(self.con, day, distributions)
        return distributions


class SparkTags(DuckDBTags):
    """Tags computed on Spark into the lake; ``con`` is an in-memory DuckDB holding what
    Spark wrote for the day, so statistics and checks run unchanged."""

    def __init__(self, kequn: KequnContext, session: SessionSource):
        super().__init__(kequn)
        self.session = session

    @contextmanager
    def open(self) -> Iterator[SparkTags]:
        """The mirror for the block, with ``raw.customers`` read from the lake."""
        from warehouse.lake import mirror, parquet_relation

        con = mirror()
        con.execute(f"CREATE OR REPLACE VIEW raw.customers AS SELECT * FROM "
                    f"{parquet_relation(lake_of(self.kequn).raw('customers'))}")
        self.con = con
        try:
            yield self
        finally:
            con.close()

    def _engine(self, plan: TagPlan) -> SparkEngine:
        from spark_engine.engine import SparkEngine

        return SparkEngine(self.session(), lake_of(self.kequn), plan)

    def _load_groups(self, plan: TagPlan, day: date, names: list[str]) -> list[str]:
        from warehouse.lake import load_day

        lake, missing = lake_of(self.kequn), []
        for group in plan.groups:
            if group.inline or not set(group.tags) & set(names):
                continue
            schema, table = group.table.split(".")
            if not load_day(self.con, group.table, lake.day_partition((schema, table), day),
                            day):
                missing += list(group.tags)
        return missing

    stored_groups = True

    def build_day(self, plan: TagPlan, day: date,
                  compute: list[str] | None = None) -> CustomerTagsResult:
        """The groups of ``compute`` (default: all; whole groups) on Spark, then the wide
        table from every group's stored rows; the atomic tags measured from their groups,
        the others from the wide table."""
        from tags.build import measure_tags

        chosen = list(plan.atomic) if compute is None else compute
        if chosen:
            self._engine(plan).build_tags(plan, day, chosen)
        result = self.build_customer_tags(plan, day)
        measured = measure_tags(self.con, plan, day, plan.atomic, stored_groups=True)
        return replace(result, tags={**result.tags, **measured}, computed=tuple(chosen))

    def build_customer_tags(self, plan: TagPlan, day: date) -> CustomerTagsResult:
        """The wide table on Spark; statistics and the day's catalog (kept in the lake at
        ``tags/catalog/as_of=D``) computed from it."""
        from kequn.tables import qualified
        from plan.tags import pretty
        from tags.build import CustomerTagsResult, wide_stats
        from tags.catalog import Coverage, write_catalog
        from warehouse.lake import load_all, load_day, save_day

        lake = lake_of(self.kequn)
        rows = self._engine(plan).build_customer_tags(plan, day)
        load_day(self.con, qualified(CUSTOMER_TAGS), lake.wide_partition(day), day)
        load_all(self.con, qualified(CATALOG), lake.table(CATALOG))
        stats = wide_stats(self.con, plan, day)
        catalog_rows = write_catalog(self.con, plan.tags, day, {
            n: Coverage(s.coverage, rows) for n, s in stats.items()})
        save_day(self.con, qualified(CATALOG), lake.day_partition(CATALOG, day), day, lake)
        self._publish(CATALOG, day)
        missing = tuple(self._load_groups(plan, day, [n for g in plan.groups for n in g.tags]))
        return CustomerTagsResult(rows, pretty(plan.customer_tags_query), stats, catalog_rows,
                                  missing, counts=next(iter(stats.values())).counts
                                  if stats else None)

    def record_distributions(self, tags: Mapping[str, Tag], day: date,
                             known: dict[str, list[Bucket]] | None = None
                             ) -> dict[str, list[Bucket]]:
        """The distributions over the wide table Spark wrote (:func:`distributions_to_lake`;
        the Spark build computes none on its way, ``known`` is ignored), also published to
        the warehouse's ``tags.distribution``."""
        distributions = distributions_to_lake(self.con, lake_of(self.kequn), tags, day)
        self._publish(DISTRIBUTION, day)
        return distributions

    def _publish(self, table: tuple[str, str], day: date) -> None:
        """Replace ``day``'s rows of the warehouse's ``table`` by the mirror's (one
        transaction): the small per-day facts the CLI and the demo summary read there."""
        publish_day(self.kequn, self.con, table, day)


def publish_day(kequn: KequnContext, source: duckdb.DuckDBPyConnection,
                table: tuple[str, str], day: date) -> int:
    """Copy ``day``'s rows of ``table`` from ``source`` (a mirror) into the warehouse's
    ``table``, replacing that day's rows in one transaction; the rows copied."""
    from warehouse.db import transaction

    name = qualified(table)
    rows = source.sql(f"SELECT * FROM {name} WHERE as_of = ?", params=[day]).to_arrow_table()
    with kequn.connect_warehouse() as con, transaction(con):
        con.register("kq_published", rows)
        try:
            con.execute(f"DELETE FROM {name} WHERE as_of = ?", [day])
            con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM kq_published")
        finally:
            con.unregister("kq_published")
    return rows.num_rows


def tag_engine(kequn: KequnContext, session: SessionSource | None = None) -> DuckDBTags:
    """The tag engine of ``kequn.settings.engine`` (Spark needs ``session``)."""
    if kequn.settings.engine == "spark":
        if session is None:
            raise ExecutionError("engine spark needs a Spark session", Location())
        return SparkTags(kequn, session)
    return DuckDBTags(kequn)


def build_segment_on(kequn: KequnContext, compiled: CompiledSegment, day: date, *,
                     session: SessionSource | None = None,
                     import_path: Path | None = None,
                     then: Callable[[duckdb.DuckDBPyConnection, MemberStats], None] | None = None
                     ) -> BuildResult:
    """Build one segment for ``day`` on the configured engine; the same result either way.
    ``then`` runs with a warehouse connection and the build's statistics once it is
    written (on DuckDB, the build's own connection)."""
    from segments.build import build_segment

    if kequn.settings.engine != "spark":
        return build_segment(kequn.warehouse, compiled, day, import_path=import_path,
                             sandbox=kequn.sandbox_limits,
                             max_bytes=kequn.settings.import_max_bytes,
                             report_dir=kequn.reports_dir, then=then)
    result = build_segment_spark(kequn, session, compiled, day, import_path=import_path)
    if then is not None:
        with kequn.connect_warehouse() as con:
            then(con, result.stats)
    return result


def build_segment_spark(kequn: KequnContext, session: SessionSource | None,
                        compiled: CompiledSegment, day: date, *,
                        import_path: Path | None = None) -> BuildResult:
    """One segment for ``day`` on Spark into the lake (a file segment through the DuckDB
    import); the statistics (size, entered and left against the previous built day,
    sample) are computed by DuckDB over the segment's lake partitions."""
    import time

    from segments.build import BuildResult
    from segments.materialize import member_stats
    from spark_engine.engine import SparkEngine
    from warehouse.lake import mirror, parquet_relation

    started = time.perf_counter()
    name, lake = compiled.segment.name, lake_of(kequn)
    report = None
    if compiled.segment.kind == "file":
        report = build_file_segment_to_lake(kequn, None, compiled, day, import_path=import_path)
    else:
        if session is None:
            raise ExecutionError("engine spark needs a Spark session", Location())
        engine = SparkEngine(session(), lake, kequn.plan.tags)
        engine.build_segment(compiled, day, timeout_s=kequn.settings.sandbox_timeout_s)
    folder = lake.table(MEMBERS) / f"segment={name}"
    with closing(mirror()) as con:
        con.execute(f"INSERT INTO segments.members SELECT ?, CAST(as_of AS DATE), customer_id "
                    f"FROM {parquet_relation(folder)}", [name])
        built = [date.fromisoformat(p.name.split("=", 1)[1]) for p in folder.glob("as_of=*")
                 if has_parquet(p)]  # empty days too: the partition exists
        for built_day in built:
            con.execute("INSERT INTO segments.materializations SELECT ?, ?, count(*), '', "
                        "current_timestamp FROM segments.members WHERE as_of = ?",
                        [name, built_day, built_day])
        stats = member_stats(con, name, day)
    return BuildResult(stats, time.perf_counter() - started, report)
