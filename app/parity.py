"""Parity: the same definitions computed on DuckDB and on Spark, compared row for row.

:func:`run_parity` exports the warehouse's raw tables to the lake (both engines read the
same rows), builds every tag and segment for each day on both engines, then compares in
DuckDB (reading Spark's Parquet):

- each tag: the wide table's column, per customer (``IS DISTINCT FROM``: NULL = NULL),
  customers present on one side only counted as differences, and the column's type on
  each side against the declared type (:data:`project.tag.SQL_TYPES`);
- each segment: its member set;
- each tag's distribution (``tags.distribution`` against the lake's
  ``tags/distribution/as_of=D``): the same buckets (top values, quartile ranges) with the
  same counts;
- each segment's history row (size, entered, left, previous built day).

A :class:`Verdict` per definition and day says ``same`` or how it differs, with a sample of
customer ids (``kequn parity --as-of D``; the parity tests).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from app.engines import (
    DayBuild,
    build_day_duckdb,
    build_day_spark,
    export_lake,
    lake_of,
    spark_engine,
)
from kequn.errors import ExecutionError, Location

if TYPE_CHECKING:
    import duckdb
    from pyspark.sql import SparkSession

    from app.context import KequnContext

SAMPLE = 5


@dataclass(frozen=True)
class Verdict:
    """One definition on one day: same on both engines, or how it differs."""

    kind: str
    """``tag``, ``segment:<kind>``, ``distribution`` or ``history``."""
    name: str
    day: date
    rows: int
    """Rows compared (customers for a tag, members on DuckDB for a segment)."""
    differing: int
    """Customers whose value (or membership) differs, or present on one side only."""
    declared: str = ""
    duckdb_type: str = ""
    spark_type: str = ""
    sample: list[int] = field(default_factory=list)
    detail: str = ""
    """What differs, in words (distributions and history rows)."""

    @property
    def same(self) -> bool:
        """Values identical and both types as declared."""
        return self.differing == 0 and self.duckdb_type == self.spark_type == self.declared

    def render(self) -> str:
        """One line: ``same`` or the differences."""
        head = f"{self.day} {self.kind:16} {self.name:28}"
        if self.same:
            return f"{head} same ({self.rows} rows)"
        parts = []
        if self.differing and self.detail:
            parts.append(self.detail)
        elif self.differing:
            parts.append(f"{self.differing} of {self.rows} differ (e.g. customers "
                         f"{', '.join(map(str, self.sample))})")
        if not (self.duckdb_type == self.spark_type == self.declared):
            parts.append(f"types: declared {self.declared}, duckdb {self.duckdb_type}, "
                         f"spark {self.spark_type}")
        return f"{head} DIFFERENT: {'; '.join(parts)}"


def _normal(kind: str) -> str:
    return kind.replace(" ", "").upper()


def _quoted(path) -> str:
    return str(path).replace("'", "''")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def compare_tags(con: duckdb.DuckDBPyConnection, kequn: KequnContext,
                 day: date) -> list[Verdict]:
    """Every tag's column for ``day``: the warehouse's wide table against the lake's."""
    plan = kequn.plan.tags
    folder = lake_of(kequn).wide_partition(day)
    con.execute(f"CREATE OR REPLACE TEMP VIEW kq_spark_wide AS SELECT * FROM "
                f"read_parquet('{_quoted(folder)}/*.parquet')")
    con.execute("CREATE OR REPLACE TEMP TABLE kq_duck_day AS SELECT * FROM tags.customer_tags "
                "WHERE as_of = ?", [day])
    duck_types = {r[0]: _normal(r[1]) for r in con.execute("DESCRIBE kq_duck_day").fetchall()}
    spark_types = {r[0]: _normal(r[1]) for r in con.execute("DESCRIBE kq_spark_wide").fetchall()}
    names = list(plan.tags)
    counts = ", ".join(
        f"count(*) FILTER (WHERE d.customer_id IS NULL OR s.customer_id IS NULL OR "
        f"d.{_ident(n)} IS DISTINCT FROM s.{_ident(n)})" for n in names)
    joined = ("FROM kq_duck_day d FULL OUTER JOIN kq_spark_wide s "
              "ON d.customer_id = s.customer_id")
    row = con.execute(f"SELECT count(d.customer_id), {counts} {joined}").fetchall()[0]
    rows, differing = int(row[0]), [int(x) for x in row[1:]]
    verdicts = []
    for name, diff in zip(names, differing, strict=True):
        sample: list[int] = []
        if diff:
            sample = [int(r[0]) for r in con.execute(
                f"SELECT coalesce(d.customer_id, s.customer_id) AS id {joined} WHERE "
                f"d.customer_id IS NULL OR s.customer_id IS NULL OR d.{_ident(name)} IS "
                f"DISTINCT FROM s.{_ident(name)} ORDER BY id LIMIT {SAMPLE}").fetchall()]
        verdicts.append(Verdict("tag", name, day, rows, diff, _normal(plan.tags[name].sql_type),
                                duck_types.get(name, "missing"),
                                spark_types.get(name, "missing"), sample))
    con.execute("DROP TABLE kq_duck_day")
    return verdicts


def compare_segment(con: duckdb.DuckDBPyConnection, kequn: KequnContext, name: str,
                    day: date) -> Verdict:
    """A segment's members for ``day``: the warehouse's against the lake's."""
    from warehouse.lake import read_members

    kind = f"segment:{kequn.plan.segments[name].segment.kind}"
    ids = read_members(con, lake_of(kequn), name, day)
    if ids is None:
        raise ExecutionError(f"segment '{name}' has no lake partition for {day}", Location())
    con.register("kq_spark_members", ids)
    try:
        joined = ("FROM (SELECT customer_id FROM segments.members WHERE segment = $s AND "
                  "as_of = $d) d FULL OUTER JOIN kq_spark_members s USING (customer_id)")
        rows, diff = con.execute(
            f"SELECT count(d.customer_id), count(*) FILTER (WHERE d.customer_id IS NULL OR "
            f"s.customer_id IS NULL) {joined}", {"s": name, "d": day}).fetchall()[0]
        sample = [int(r[0]) for r in con.execute(
            f"SELECT customer_id {joined} WHERE d.customer_id IS NULL OR s.customer_id IS NULL "
            f"ORDER BY 1 LIMIT {SAMPLE}", {"s": name, "d": day}).fetchall()] if diff else []
    finally:
        con.unregister("kq_spark_members")
    return Verdict(kind, name, day, int(rows), int(diff), "BIGINT", "BIGINT", "BIGINT", sample)


def compare_distributions(con: duckdb.DuckDBPyConnection, kequn: KequnContext,
                          day: date) -> list[Verdict]:
    """Each tag's distribution rows for ``day``: the warehouse's ``tags.distribution``
    against the lake's ``tags/distribution/as_of=D`` (bucket, rank and count alike)."""
    from kequn.lake import has_parquet
    from kequn.tables import DISTRIBUTION

    folder = lake_of(kequn).day_partition(DISTRIBUTION, day)
    if not has_parquet(folder):
        raise ExecutionError(f"no tag distribution in the lake for {day} ({folder})",
                             Location(folder))
    rows = con.execute(
        f"""WITH d AS (SELECT name, rank, bucket, customers FROM tags.distribution
                       WHERE as_of = $day),
                 s AS (SELECT name, rank, bucket, customers
                       FROM read_parquet('{_quoted(folder)}/*.parquet'))
            SELECT coalesce(d.name, s.name) AS tag, count(d.name),
                   count(*) FILTER (WHERE d.name IS NULL OR s.name IS NULL),
                   string_agg(CASE WHEN d.name IS NULL OR s.name IS NULL THEN
                       coalesce(d.bucket || ' ' || d.customers, '-') || ' vs ' ||
                       coalesce(s.bucket || ' ' || s.customers, '-') END, '; ')
            FROM d FULL OUTER JOIN s USING (name, rank, bucket, customers)
            GROUP BY ALL ORDER BY tag""", {"day": day}).fetchall()
    found = {tag: (int(n), int(diff), text or "") for tag, n, diff, text in rows}
    verdicts = []
    for name in kequn.plan.tags.tags:
        if name in kequn.plan.tags.broken:
            continue
        n, diff, text = found.get(name, (0, 1, "no buckets on either engine"))
        verdicts.append(Verdict("distribution", name, day, n, diff,
                                detail=f"buckets differ (duckdb vs spark): {text}"))
    return verdicts


def compare_history(duck: DayBuild, spark: DayBuild) -> list[Verdict]:
    """Each segment's history row (size, entered, left, previous day) on both engines."""
    verdicts = []
    for name in sorted(duck.history):
        d, s = duck.history[name], spark.history.get(name)
        diff = int(d != s)
        verdicts.append(Verdict("history", name, duck.day, d.size, diff,
                                detail=f"duckdb {d}, spark {s}"))
    return verdicts


def compare_day(kequn: KequnContext, day: date) -> list[Verdict]:
    """Every tag, segment and tag distribution of ``day``, already built on both engines."""
    with kequn.connect_warehouse() as con:
        verdicts = compare_tags(con, kequn, day)
        verdicts += [compare_segment(con, kequn, name, day)
                     for name in sorted(kequn.plan.segments)]
        verdicts += compare_distributions(con, kequn, day)
    return verdicts


def run_parity(kequn: KequnContext, days: list[date],
               spark: SparkSession | None = None) -> list[Verdict]:
    """Export raw to the lake, build ``days`` on both engines, compare.

    Uses the session ``spark`` when given (tests share one), else starts one and stops it.
    """
    export_lake(kequn)
    with ExitStack() as stack:
        if spark is None:
            engine = stack.enter_context(spark_engine(kequn, "kequn-parity"))
        else:
            from spark_engine.engine import SparkEngine

            engine = SparkEngine(spark, lake_of(kequn), kequn.plan.tags)
        verdicts: list[Verdict] = []
        for day in sorted(days):
            duck = build_day_duckdb(kequn, day)
            spark_day = build_day_spark(kequn, engine, day)
            verdicts += compare_day(kequn, day)
            verdicts += compare_history(duck, spark_day)
    return verdicts
