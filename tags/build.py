"""Run the compiled tag plan in the DuckDB warehouse and store the results for a day.

Storage (all in schema ``tags``, shaped by :mod:`tags.storage`):

- ``tags.customer_tags``: the wide table (architecture §4), one row per registered
  customer and day, one column per tag. It is the only place tag values are stored: one
  query computes the day (each source's atomic tags by one fused scan, joined to
  ``raw.customers``, derived tags in the same SELECT) and writes it once.
- ``tags.tag_<name>``: a view per tag, ``(as_of, customer_id, <name>)`` over the wide table.
- ``tags.catalog``: see :mod:`tags.catalog`.

Every write replaces one day's rows in one transaction (delete + insert), so re-running a
day is idempotent and a failure leaves the previous data in place. Building a subset of
the atomic tags keeps the other tags' stored values of that day. The day is always a
bound parameter. Dagster (``assets/tags.py``) and the benchmark call these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date

import duckdb
from sqlglot import exp

from kequn.errors import ExecutionError, Location
from plan.params import as_of
from plan.tags import (
    WIDE,
    TagPlan,
    bitmap_fits,
    day_rows,
    distinct_ids,
    pretty,
    registered_customers_query,
    stats_query,
)
from project.tag import Tag
from tags.catalog import Coverage, write_catalog
from tags.distribution import Bucket, distribution_columns, distributions_from, quartile_cuts
from tags.storage import ensure_table, tag_view
from warehouse.db import relation_kind, run, transaction


@dataclass(frozen=True)
class TagStats:
    """What one build wrote for one tag on one day."""

    name: str
    rows: int
    """Customers with a non-NULL value stored for the day."""
    coverage: int
    """Customers whose value is neither NULL, FALSE nor the tag's declared default."""
    customers: int
    """Customers registered by the end of the day."""
    sql: str
    """The SQL that computed the tag (the fused query of its group, or the wide SELECT)."""
    out_of_domain: int | None = None
    """Values of the day outside the declared domain (None: no domain declared)."""
    relation_rows: int = 0
    """Rows of the day in the relation holding the tag (its group table, or the wide one)."""
    relation_customers: int = 0
    """Distinct customers among those rows (the one-row-per-customer check's count)."""

    @property
    def coverage_ratio(self) -> float:
        """coverage / customers (0 when there are no customers)."""
        return self.coverage / self.customers if self.customers else 0.0

    @property
    def counts(self) -> tuple[int, int]:
        """(rows, distinct customers) of the relation holding the tag, as counted."""
        return self.relation_rows, self.relation_customers


@dataclass(frozen=True)
class CustomerTagsResult:
    """What :func:`build_day` wrote for a day."""

    rows: int
    sql: str
    tags: dict[str, TagStats]
    catalog_rows: int
    missing: tuple[str, ...] = ()
    """Atomic tags whose source had no stored rows for the day (never built for it?)."""
    distributions: dict[str, list[Bucket]] = field(default_factory=dict)
    """Each tag's value distribution for the day (broken tags left out)."""
    computed: tuple[str, ...] = ()
    """The atomic tags computed from their sources by this build (the others kept)."""
    failed: dict[str, ExecutionError] = field(default_factory=dict)
    """Atomic tags whose query failed: not computed, their stored values of the day kept
    (the rest of the day was built without them)."""
    counts: tuple[int, int] | None = None
    """(rows, distinct customers) of the wide table's day, from the statistics scan."""


def _fail(tags: list[Tag], error: duckdb.Error) -> ExecutionError:
    names = ", ".join(t.name for t in tags)
    first = str(error).splitlines()[0]
    return ExecutionError(f"running tag(s) {names} failed: {first}",
                          tags[0].body_location if tags else Location())


def _failing(con: duckdb.DuckDBPyConnection, plan: TagPlan, day: date,
             names: list[str]) -> dict[str, duckdb.Error]:
    """The atomic tags among ``names`` whose own (group) query does not bind, with the
    error of each."""
    bad = {}
    for name in names:
        probe = exp.select("*").from_(
            plan.group_query(plan.group_of(name), [name]).subquery("q")).limit(0)
        try:
            run(con, probe, day)
        except duckdb.Error as error:
            bad[name] = error
    return bad


def _registered(con: duckdb.DuckDBPyConnection, day: date) -> int:
    row = run(con, registered_customers_query(), day).fetchone()
    return int(row[0]) if row else 0


def _stats(con: duckdb.DuckDBPyConnection, plan: TagPlan, relation: exp.Expression, day: date,
           names: list[str], customers: int | None,
           sql: Mapping[str, str], values: dict[str, object] | None = None,
           unique: bool = False) -> dict[str, TagStats]:
    """Rows and coverage of ``names`` in ``relation`` for the day, in one scan (or from the
    ``values`` of a scan that carried :func:`plan.tags.stats_query`'s columns).

    ``customers`` None means ``relation`` holds exactly the registered customers (the wide
    table), so its row count is the customer count.
    """
    if values is None:
        ids = None if unique else _id_bounds(con, relation, day)
        values = _scan(con, stats_query(plan.tags, relation, names, unique=unique, ids=ids),
                       day)
    if customers is None:
        customers = int(values.get("_rows") or 0)
    out = {}
    for name in names:
        covered = int(values.get(f"{name}__covered") or 0)
        bad = int(values[f"{name}__bad"] or 0) if f"{name}__bad" in values else None
        out[name] = TagStats(name, int(values.get(f"{name}__rows") or 0), covered, customers,
                             sql[name], bad, int(values.get("_rows") or 0),
                             int(values.get("_customers") or 0))
    return out


def _id_bounds(con: duckdb.DuckDBPyConnection, relation: exp.Expression,
               day: date) -> tuple[int, int] | None:
    """The (min, max) customer ids of the day's rows when a bitmap over them is small
    enough to count distinct ids with (:func:`plan.tags.distinct_ids`), else None."""
    rows, low, high = run(con, exp.select(
        exp.Count(this=exp.Star()), exp.Min(this=exp.column("customer_id")),
        exp.Max(this=exp.column("customer_id"))).from_(day_rows(relation.copy()).subquery("d")),
        day).fetchone()
    bounds = (int(low), int(high)) if low is not None else None
    return bounds if bitmap_fits(bounds, int(rows)) else None


def _distinct_customers(con: duckdb.DuckDBPyConnection, relation: exp.Expression,
                        day: date) -> int:
    """The distinct customer ids among the day's rows of ``relation``."""
    count = exp.select(distinct_ids(_id_bounds(con, relation, day))).from_(
        day_rows(relation.copy()).subquery("d"))
    row = run(con, count, day).fetchone()
    return int(row[0] or 0) if row else 0


def _scan(con: duckdb.DuckDBPyConnection, query: exp.Select, day: date) -> dict[str, object]:
    """The one row of an aggregate query, by column name."""
    cursor = run(con, query, day)
    row = cursor.fetchone()
    return dict(zip([d[0] for d in cursor.description], row, strict=True)) if row else {}


def build_day(con: duckdb.DuckDBPyConnection, plan: TagPlan, day: date,
              compute: Iterable[str] | None = None) -> CustomerTagsResult:
    """Build ``tags.customer_tags`` and ``tags.catalog`` for ``day``, computing the atomic
    tags ``compute`` (default: all) from their sources.

    Atomic tags not computed keep their stored values of the day (their default, else
    NULL, when the day was never built: reported as ``missing``); derived tags are always
    recomputed. One transaction: the wide table's day, the catalog's day and the tag views
    are replaced together. The statistics, the checks' counts and each tag's distribution
    (returned, stored by the caller) come from one scan of the written day. A tag whose
    query does not run is left out (its stored values kept, reported in ``failed``) and
    the rest is built; any other failure raises ExecutionError and writes nothing.
    """
    chosen = list(plan.atomic if compute is None else dict.fromkeys(compute))
    for name in chosen:
        if name not in plan.tags or plan.tags[name].kind != "atomic":
            raise ValueError(f"'{name}' is not an atomic tag of this project")
    try:
        return _write_day(con, plan, day, chosen)
    except duckdb.Error as error:
        bad = _failing(con, plan, day, chosen)
        if not bad:
            raise _wide_failure(plan, error) from error
    try:
        result = _write_day(con, plan, day, [n for n in chosen if n not in bad])
    except duckdb.Error as error:
        raise _wide_failure(plan, error) from error
    return replace(result, failed={n: _fail([plan.tags[n]], e) for n, e in bad.items()})


def _wide_failure(plan: TagPlan, error: duckdb.Error) -> ExecutionError:
    return ExecutionError(f"building {WIDE} failed: {str(error).splitlines()[0]}",
                          Location(plan.root))


def _sql_of(plan: TagPlan, wide_sql: str) -> dict[str, str]:
    """The SQL shown for each tag: its source's fused query, else the wide SELECT (each
    query printed once)."""
    shown = dict.fromkeys(plan.tags, wide_sql)
    for group in plan.groups:
        if not group.inline:
            shown.update(dict.fromkeys(group.tags, pretty(plan.group_query(group))))
    return shown


def _write_day(con: duckdb.DuckDBPyConnection, plan: TagPlan, day: date,
               chosen: list[str]) -> CustomerTagsResult:
    names = list(plan.tags)
    wide = exp.to_table(WIDE)
    is_day = exp.EQ(this=exp.column("as_of"), expression=as_of())
    with transaction(con):
        before = ensure_table(con, WIDE, [(t.name, t.sql_type) for t in plan.tags.values()],
                              keep=plan.broken)
        # a broken tag's column keeps the day's stored values (nothing stored is lost)
        kept = [n for n in plan.broken if n in (before or {})]
        query = plan.wide_query(chosen, kept)
        sql = pretty(query)
        columns = ["as_of", "customer_id", *names, *kept]
        if len(chosen) == len(plan.atomic) and not kept:
            stored_before = True
            run(con, exp.delete(wide.copy(), where=is_day), day)
            run(con, exp.insert(query, wide.copy(), columns=columns), day)
        else:  # reads the stored day: staged before the day is replaced
            stored_before = bool(run(con, exp.select(exp.Exists(this=day_rows(wide.copy()))),
                                     day).fetchone()[0])
            staged = exp.to_table("_kequn_wide")
            run(con, exp.Create(this=staged, kind="TABLE", replace=True, expression=query,
                                properties=exp.Properties(
                                    expressions=[exp.TemporaryProperty()])), day)
            run(con, exp.delete(wide.copy(), where=is_day), day)
            run(con, exp.insert(exp.select(*columns).from_(staged.copy()), wide.copy(),
                                columns=columns), day)
            con.execute(exp.Drop(tables=[staged], kind="TABLE").sql("duckdb"))
        # one scan of the day's wide rows: statistics, checks' counts, distributions (their
        # quartile cuts read first)
        cuts = quartile_cuts(con, plan.built, wide.copy(), day)
        values = _scan(con, stats_query(plan.tags, wide.copy(), names, unique=True).select(
            *distribution_columns(plan.built, cuts)), day)
        # counted apart: the id bitmap inside that aggregate costs gigabytes (at 10M: 3.5 GiB
        # peak and 0.6 s more)
        values["_customers"] = _distinct_customers(con, wide, day)
        stats = _stats(con, plan, wide.copy(), day, names, None, _sql_of(plan, sql), values)
        distributions = distributions_from(plan.built, values, cuts)
        customers = next(iter(stats.values())).customers if stats else 0
        catalog_rows = write_catalog(
            con, plan.tags, day, {n: Coverage(s.coverage, customers) for n, s in stats.items()})
        for name in names:
            tag_view(con, name, WIDE)
    inline = {n for g in plan.groups if g.inline for n in g.tags}  # always computed
    missing = () if stored_before else tuple(
        n for n in plan.atomic if n not in chosen and n not in inline)
    return CustomerTagsResult(customers, sql, stats, catalog_rows, missing, distributions,
                              tuple(chosen), counts=_counts(values))


def _counts(values: Mapping[str, object]) -> tuple[int, int]:
    """(rows, distinct customers) of a statistics scan."""
    return int(values.get("_rows") or 0), int(values.get("_customers") or 0)  # type: ignore[call-overload]


def measure_tags(con: duckdb.DuckDBPyConnection, plan: TagPlan, day: date,
                 names: Iterable[str], *, stored_groups: bool = False) -> dict[str, TagStats]:
    """Rows and coverage of already stored tags for ``day``, computing nothing new: read
    from the wide table's day or, with ``stored_groups`` (the Spark engine's mirror;
    atomic tags only), from each group's table (row tags over raw.customers, never stored
    there, are measured from their query)."""
    wanted = list(names)
    customers = _registered(con, day)
    if not stored_groups:
        if relation_kind(con, *WIDE.split(".")) != "BASE TABLE":
            return {n: TagStats(n, 0, 0, customers, "") for n in wanted}
        sql = pretty(plan.wide_query())
        return _stats(con, plan, exp.to_table(WIDE), day, wanted, customers,
                      dict.fromkeys(wanted, sql))
    stats: dict[str, TagStats] = {}
    for group in plan.groups:
        chosen = [n for n in group.tags if n in wanted]
        if not chosen:
            continue
        if group.inline or relation_kind(con, *group.table.split(".")) == "BASE TABLE":
            sql = pretty(plan.group_query(group, chosen))
            stats.update(_stats(con, plan, plan.relation(group, stored=True), day, chosen,
                                customers, dict.fromkeys(chosen, sql),
                                unique=plan.unique_by_construction(group)))
        else:
            stats.update({n: TagStats(n, 0, 0, customers, "") for n in chosen})
    return stats


def wide_stats(con: duckdb.DuckDBPyConnection, plan: TagPlan, day: date) -> dict[str, TagStats]:
    """Rows and coverage of every tag in the stored wide table for ``day`` (one scan); what
    the Spark engine reports after it wrote the wide table to the lake."""
    names = list(plan.tags)
    sql = pretty(plan.customer_tags_query)
    return _stats(con, plan, exp.to_table(WIDE), day, names, None, dict.fromkeys(names, sql))
