"""Run the compiled tag plan in the DuckDB warehouse and store the results for a day.

Storage (all in schema ``tags``, shaped by :mod:`tags.storage`):

- ``tags._src_<group>(as_of, customer_id, <tag columns>)``: one table per storage
  group (a fused source, or a standalone tag), one row per customer with data. Row tags
  over ``raw.customers`` (one row per customer, no aggregate) are the exception: the
  wide SELECT scans that table anyway, so they are computed there and stored nowhere else
  (their checks read the group's query, :meth:`plan.tags.TagPlan.relation`).
- ``tags.tag_<name>``: a view per tag, ``(as_of, customer_id, <name>)``.
- ``tags.customer_tags``: the wide table (architecture §4), joined from the group tables
  with derived tags computed in the same SELECT.
- ``tags.catalog``: see :mod:`tags.catalog`.

Every write replaces one day's rows in one transaction (delete + insert), so
re-running a day is idempotent and a failure leaves the previous data in place.
Building a subset of a group's tags keeps the other tags' stored values of that day. The
day is always a bound parameter. Dagster (``assets/tags.py``) and the benchmark call
these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

import duckdb
from sqlglot import exp

from kequn.errors import ExecutionError, Location
from plan.params import as_of
from plan.tags import (
    WIDE,
    TagGroup,
    TagPlan,
    day_rows,
    pretty,
    registered_customers_query,
    stats_query,
)
from project.tag import Tag
from tags.catalog import Coverage, write_catalog
from tags.distribution import Bucket, distribution_columns, distributions_from
from tags.storage import drop_if, ensure_table, tag_view
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


@dataclass(frozen=True)
class CustomerTagsResult:
    """What :func:`build_customer_tags` wrote for a day."""

    rows: int
    sql: str
    tags: dict[str, TagStats]
    catalog_rows: int
    missing: tuple[str, ...] = ()
    """Atomic tags whose source had no stored rows for the day (never built for it?)."""
    distributions: dict[str, list[Bucket]] = field(default_factory=dict)
    """Each tag's value distribution for the day (broken tags left out)."""


def _columns(plan: TagPlan, group: TagGroup) -> list[tuple[str, str]]:
    return [(name, plan.tags[name].sql_type) for name in group.tags]


def _fail(tags: list[Tag], error: duckdb.Error) -> ExecutionError:
    names = ", ".join(t.name for t in tags)
    first = str(error).splitlines()[0]
    return ExecutionError(f"running tag(s) {names} failed: {first}",
                          tags[0].body_location if tags else Location())


def _locate_failure(con: duckdb.DuckDBPyConnection, plan: TagPlan, group: TagGroup,
                    day: date, names: list[str]) -> list[Tag]:
    """The tags of a failed fused query whose own query does not bind (all when unknown)."""
    bad = []
    for name in names:
        probe = exp.select("*").from_(plan.group_query(group, [name]).subquery("q")).limit(0)
        try:
            run(con, probe, day)
        except duckdb.Error:
            bad.append(plan.tags[name])
    return bad or [plan.tags[n] for n in names]


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
        values = _scan(con, stats_query(plan.tags, relation, names, unique=unique), day)
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


def _scan(con: duckdb.DuckDBPyConnection, query: exp.Select, day: date) -> dict[str, object]:
    """The one row of an aggregate query, by column name."""
    cursor = run(con, query, day)
    row = cursor.fetchone()
    return dict(zip([d[0] for d in cursor.description], row, strict=True)) if row else {}


def build_tags(con: duckdb.DuckDBPyConnection, plan: TagPlan, day: date,
               names: Iterable[str] | None = None) -> dict[str, TagStats]:
    """Compute and store the atomic tags ``names`` (default: all) for ``day``.

    Tags of one source run as one fused query. Each group's day is replaced in one
    transaction; when only some of a group's tags are selected, the other tags' stored
    values for that day are kept. Raises ExecutionError naming the tag file on failure.
    """
    selected = list(names) if names is not None else [
        t.name for t in plan.tags.values() if t.kind == "atomic"]
    for name in selected:
        if name not in plan.tags or plan.tags[name].kind != "atomic":
            raise ValueError(f"'{name}' is not an atomic tag of this project")
    customers = _registered(con, day)
    stats: dict[str, TagStats] = {}
    for group in plan.groups:
        chosen = [n for n in group.tags if n in selected]
        if chosen:
            stats.update(_build_group(con, plan, group, day, chosen, customers))
    return stats


def measure_tags(con: duckdb.DuckDBPyConnection, plan: TagPlan, day: date,
                 names: Iterable[str]) -> dict[str, TagStats]:
    """Rows and coverage of already stored atomic tags for ``day``, computing nothing new
    (row tags over raw.customers, never stored, are measured from their query)."""
    wanted = list(names)
    customers = _registered(con, day)
    stats: dict[str, TagStats] = {}
    for group in plan.groups:
        chosen = [n for n in group.tags if n in wanted]
        if not chosen:
            continue
        if group.inline or relation_kind(con, *group.table.split(".")) == "BASE TABLE":
            sql = pretty(plan.group_query(group, chosen))
            stats.update(_stats(con, plan, plan.relation(group), day, chosen, customers,
                                dict.fromkeys(chosen, sql)))
        else:
            stats.update({n: TagStats(n, 0, 0, customers, "") for n in chosen})
    return stats


def _build_group(con: duckdb.DuckDBPyConnection, plan: TagPlan, group: TagGroup,
                 day: date, chosen: list[str], customers: int) -> dict[str, TagStats]:
    sql = pretty(plan.group_query(group, chosen if not group.inline else None))
    try:
        with transaction(con):
            drop_if(con, group.table, "VIEW")  # a view that older versions kept
            if not group.inline:
                ensure_table(con, group.table, _columns(plan, group), keep=plan.broken)
                if len(chosen) == len(group.tags):
                    _replace_day(con, plan, group, day)
                else:
                    _merge_subset(con, plan, group, day, chosen)
                for name in chosen:
                    tag_view(con, name, group.table)
            return _stats(con, plan, plan.relation(group), day, chosen, customers,
                          dict.fromkeys(chosen, sql), unique=plan.unique_by_construction(group))
    except duckdb.Error as error:
        raise _fail(_locate_failure(con, plan, group, day, chosen), error) from error


def _replace_day(con: duckdb.DuckDBPyConnection, plan: TagPlan, group: TagGroup,
                 day: date) -> None:
    table = exp.to_table(group.table)
    is_day = exp.EQ(this=exp.column("as_of"), expression=as_of())
    run(con, exp.delete(table.copy(), where=is_day), day)
    names = list(group.tags)
    rows = exp.select(as_of(), exp.column("customer_id", "q"),
                      *[exp.column(n, "q") for n in names]).from_(
        plan.group_query(group).subquery("q"))
    run(con, exp.insert(rows, table, columns=["as_of", "customer_id", *names]), day)


def _merge_subset(con: duckdb.DuckDBPyConnection, plan: TagPlan, group: TagGroup,
                  day: date, chosen: list[str]) -> None:
    """Replace the day's rows keeping the stored values of the group's other tags."""
    others = [n for n in group.tags if n not in chosen]
    table = exp.to_table(group.table)
    merged = exp.select(
        as_of().as_("as_of"),
        exp.Coalesce(this=exp.column("customer_id", "n"),
                     expressions=[exp.column("customer_id", "o")]).as_("customer_id"),
        *[exp.column(c, "n").as_(c) for c in chosen],
        *[exp.column(c, "o").as_(c) for c in others],
    ).from_(plan.group_query(group, chosen).subquery("n")).join(
        day_rows(table.copy()).subquery("o"), join_type="full outer",
        on=exp.EQ(this=exp.column("customer_id", "n"), expression=exp.column("customer_id", "o")))
    run(con, exp.Create(this=exp.to_table("_kequn_merged"), kind="TABLE", replace=True,
                        properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
                        expression=merged), day)
    is_day = exp.EQ(this=exp.column("as_of"), expression=as_of())
    run(con, exp.delete(table.copy(), where=is_day), day)
    names = [*chosen, *others]
    run(con, exp.insert(exp.select("as_of", "customer_id", *names).from_("_kequn_merged"),
                        table, columns=["as_of", "customer_id", *names]), day)
    con.execute("DROP TABLE _kequn_merged")


def build_customer_tags(con: duckdb.DuckDBPyConnection, plan: TagPlan,
                        day: date) -> CustomerTagsResult:
    """Build ``tags.customer_tags`` and ``tags.catalog`` for ``day`` from stored atomic tags.

    Derived tags are computed inside the wide SELECT. Atomic tags never built for the
    day read as missing (their default, else NULL). The columns of broken tags are kept
    (NULL for this day). One transaction: the wide table's day, the catalog's day and the
    derived-tag views are replaced together. The statistics, the checks' counts and each
    tag's distribution (returned, stored by the caller) come from one scan of the day.
    """
    sql = pretty(plan.customer_tags_query)
    names = list(plan.tags)
    try:
        with transaction(con):
            for group in plan.groups:
                if not group.inline:
                    drop_if(con, group.table, "VIEW")
                    ensure_table(con, group.table, _columns(plan, group), keep=plan.broken)
            ensure_table(con, WIDE, [(t.name, t.sql_type) for t in plan.tags.values()],
                         keep=plan.broken)
            wide = exp.to_table(WIDE)
            is_day = exp.EQ(this=exp.column("as_of"), expression=as_of())
            run(con, exp.delete(wide.copy(), where=is_day), day)
            run(con, exp.insert(plan.customer_tags_query, wide.copy(),
                                columns=["as_of", "customer_id", *names]), day)
            # one scan of the day's wide rows: statistics, checks' counts, distributions
            values = _scan(con, stats_query(plan.tags, wide.copy(), names).select(
                *distribution_columns(plan.built)), day)
            stats = _stats(con, plan, wide.copy(), day, names, None, dict.fromkeys(names, sql),
                           values)
            distributions = distributions_from(con, plan.built, values, day)
            customers = next(iter(stats.values())).customers if stats else 0
            catalog_rows = write_catalog(
                con, plan.tags, day,
                {n: Coverage(s.coverage, customers) for n, s in stats.items()})
            missing = tuple(n for g in plan.groups if not g.inline
                            and not _has_day(con, plan, g, day) for n in g.tags)
            in_wide = [t.name for t in plan.tags.values() if t.kind == "derived"] + [
                n for g in plan.groups if g.inline for n in g.tags]
            for name in in_wide:  # tags whose values live only in the wide table
                tag_view(con, name, WIDE)
    except duckdb.Error as error:
        raise ExecutionError(f"building {WIDE} failed: {str(error).splitlines()[0]}",
                             Location(plan.root)) from error
    return CustomerTagsResult(customers, sql, stats, catalog_rows, missing, distributions)


def _has_day(con: duckdb.DuckDBPyConnection, plan: TagPlan, group: TagGroup,
             day: date) -> bool:
    probe = exp.select(exp.Exists(this=day_rows(exp.to_table(group.table))))
    return bool(run(con, probe, day).fetchone()[0])


def wide_stats(con: duckdb.DuckDBPyConnection, plan: TagPlan, day: date) -> dict[str, TagStats]:
    """Rows and coverage of every tag in the stored wide table for ``day`` (one scan); what
    the Spark engine reports after it wrote the wide table to the lake."""
    names = list(plan.tags)
    sql = pretty(plan.customer_tags_query)
    return _stats(con, plan, exp.to_table(WIDE), day, names, None, dict.fromkeys(names, sql))
