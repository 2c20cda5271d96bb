"""Run the compiled plan on Spark: tag groups, the wide table and segments, into the lake.

Each query of the plan (:mod:`plan.tags`, :mod:`plan.segments`) is bound to the day and
transpiled (:func:`plan.spark.spark_sql`); each ``schema.table`` it reads is a temporary
view over that table's lake folder, registered afresh for every query (so a partition
written a moment ago is seen). Results are written as Parquet to a hidden temporary
folder and renamed into place (:func:`kequn.lake.replace_dir`): re-running a day replaces
exactly that day's partition, and a killed run leaves the previous one.

Differences from the DuckDB engine (``tags.build``), on purpose:

- a group is always computed whole (selecting some of its tags builds all of them: a
  partition is replaced whole);
- analysts' SQL runs with a time limit by cancelling its Spark job group from a timer
  (the gate already ran when the definition loaded);
- file segments are matched by the DuckDB import; their members are written to the lake
  with pyarrow (:meth:`SparkEngine.write_ids`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from kequn.errors import ExecutionError, Location
from kequn.lake import Lake, has_parquet, replace_dir
from kequn.tables import CUSTOMER_TAGS, IMPORTED, MEMBERS, RAW_SCHEMA, TAGS_SCHEMA, Table
from plan.params import day_values
from plan.segments import CompiledSegment
from plan.spark import spark_sql, tables_of, view_name
from plan.tags import TagGroup, TagPlan

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

MEMBER_COLUMNS = (("customer_id", "BIGINT"), ("segment", "VARCHAR"), ("as_of", "DATE"))
IMPORTED_COLUMNS = (("segment", "VARCHAR"), ("customer_id", "BIGINT"))


def spark_type(duckdb_type: str) -> str:
    """A DuckDB column type in Spark's spelling (``VARCHAR`` -> ``STRING``)."""
    return exp.DataType.build(duckdb_type, dialect="duckdb").sql(dialect="spark")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


class SparkEngine:
    """The plan's queries on one Spark session, reading and writing ``lake``."""

    def __init__(self, spark: SparkSession, lake: Lake, plan: TagPlan | None = None):
        self.spark = spark
        self.lake = lake
        self.plan = plan

    # -- reading ----------------------------------------------------------------------
    def folder(self, table: Table) -> Any:
        """The lake folder of ``schema.table``."""
        return self.lake.raw(table[1]) if table[0] == RAW_SCHEMA else self.lake.table(table)

    def _columns(self, table: Table) -> tuple[tuple[str, str], ...] | None:
        """The columns of a kequn-written table (for an empty view before its first write)."""
        if table == MEMBERS:
            return MEMBER_COLUMNS
        if table == IMPORTED:
            return IMPORTED_COLUMNS
        plan = self.plan
        if plan is not None and table == CUSTOMER_TAGS:
            return (("as_of", "DATE"), ("customer_id", "BIGINT"),
                    *((t.name, t.sql_type) for t in plan.tags.values()))
        if plan is not None and table[0] == TAGS_SCHEMA:
            for group in plan.groups:
                if group.table == f"{table[0]}.{table[1]}":
                    return (("as_of", "DATE"), ("customer_id", "BIGINT"),
                            *((n, plan.tags[n].sql_type) for n in group.tags))
        return None

    def register(self, tables: Iterable[Table]) -> None:
        """(Re)create the temporary view of each table over its lake folder."""
        for table in tables:
            view = view_name(table)
            folder = self.folder(table)
            if has_parquet(folder):
                self.spark.read.parquet(str(folder)).createOrReplaceTempView(view)
                continue
            columns = self._columns(table)
            if columns is None:
                hint = "kequn lake export" if table[0] == RAW_SCHEMA else "build it first"
                raise ExecutionError(f"{table[0]}.{table[1]} is not in the lake ({folder}): "
                                     f"{hint}", Location(folder))
            empty = exp.select(*[exp.cast(exp.null(), exp.DataType.build(t, dialect="duckdb"))
                                 .as_(c) for c, t in columns]).where(exp.false())
            self.spark.sql(empty.sql(dialect="spark")).createOrReplaceTempView(view)

    def query(self, node: exp.Expression, day: date, **values: Any) -> DataFrame:
        """``node`` bound to ``day`` (and ``values``) as a Spark DataFrame (lazy)."""
        self.register(tables_of(node))
        return self.spark.sql(spark_sql(node, {**day_values(day), **values}))

    # -- writing ----------------------------------------------------------------------
    def write(self, frame: DataFrame, final: Any) -> int:
        """Replace the partition folder ``final`` with ``frame``'s rows; the row count."""
        temp = self.lake.temp_beside(final)
        frame.write.mode("overwrite").parquet(str(temp))
        rows = pq.ParquetDataset(str(temp)).read(columns=[]).num_rows \
            if has_parquet(temp) else 0
        replace_dir(temp, final)
        return rows

    def write_ids(self, segment: str, day: date, ids: pa.Table) -> int:
        """See :func:`write_ids`."""
        return write_ids(self.lake, segment, day, ids)

    # -- tags ---------------------------------------------------------------------------
    def build_group(self, plan: TagPlan, group: TagGroup, day: date) -> int:
        """Compute one storage group's tags for ``day`` into ``tags/_src_<key>/as_of=D``."""
        frame = self.query(plan.group_query(group), day)
        try:
            return self.write(frame, self.lake.day_partition(_split(group.table), day))
        except Exception as error:  # Spark's analysis and runtime errors
            tag = plan.tags[group.tags[0]]
            raise ExecutionError(f"running tag(s) {', '.join(group.tags)} on Spark failed: "
                                 f"{_first_line(error)}", tag.body_location) from error

    def build_tags(self, plan: TagPlan, day: date,
                   names: Iterable[str] | None = None) -> dict[str, int]:
        """Build the groups holding ``names`` (default: every atomic tag); rows per group.
        Inline groups (row tags over raw.customers) are computed in the wide SELECT."""
        wanted = set(names) if names is not None else None
        rows: dict[str, int] = {}
        for group in plan.groups:
            if group.inline or (wanted is not None and not wanted & set(group.tags)):
                continue
            rows[group.key] = self.build_group(plan, group, day)
        return rows

    def build_customer_tags(self, plan: TagPlan, day: date) -> int:
        """The wide table for ``day`` into ``tags/customer_tags/as_of=D``; its row count."""
        frame = self.query(plan.customer_tags_query, day).drop("as_of")
        try:
            return self.write(frame, self.lake.wide_partition(day))
        except Exception as error:
            raise ExecutionError(f"building tags.customer_tags on Spark failed: "
                                 f"{_first_line(error)}", Location(plan.root)) from error

    # -- segments ---------------------------------------------------------------------
    def build_segment(self, compiled: CompiledSegment, day: date, *,
                      timeout_s: float | None = None) -> int:
        """Materialise a rule, sql or combine segment for ``day`` into the lake; its size.

        An analyst's SQL (kind sql) is cancelled after ``timeout_s`` seconds.
        """
        segment = compiled.segment
        frame = self.query(compiled.query, day)
        frame = frame.select("customer_id").where("customer_id IS NOT NULL").distinct()
        final = self.lake.members_partition(segment.name, day)
        limit = timeout_s if segment.kind == "sql" else None
        try:
            return self._with_time_limit(lambda: self.write(frame, final), limit)
        except TimeoutError as error:
            raise ExecutionError(f"segment '{segment.name}' ran longer than {limit:g} s on "
                                 "Spark and was cancelled",
                                 segment.definition.body_location) from error
        except Exception as error:
            raise ExecutionError(f"segment '{segment.name}' failed on Spark: "
                                 f"{_first_line(error)}", segment.definition.location()) from error

    def _with_time_limit(self, work: Any, limit: float | None) -> Any:
        if limit is None:
            return work()
        context = self.spark.sparkContext
        group = f"kequn-{uuid.uuid4().hex[:12]}"
        fired = threading.Event()

        def cancel() -> None:
            fired.set()
            context.cancelJobGroup(group)

        context.setJobGroup(group, "kequn sql segment", interruptOnCancel=True)
        timer = threading.Timer(limit, cancel)
        started = time.monotonic()
        timer.start()
        try:
            return work()
        except Exception:
            if fired.is_set():
                raise TimeoutError(time.monotonic() - started) from None
            raise
        finally:
            timer.cancel()
            context.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]


def write_ids(lake: Lake, segment: str, day: date, ids: pa.Table) -> int:
    """Replace (segment, day) in the lake with the distinct non-NULL ``customer_id`` of
    ``ids`` (an Arrow table): how file segments reach the lake. Needs no Spark session."""
    column = ids.column("customer_id").cast(pa.int64()).drop_null().unique()
    final = lake.members_partition(segment, day)
    temp = lake.temp_beside(final)
    temp.mkdir(parents=True)
    pq.write_table(pa.table({"customer_id": column}), temp / "part-0.parquet")
    replace_dir(temp, final)
    return len(column)


def _split(table: str) -> Table:
    schema, name = table.split(".")
    return schema, name
