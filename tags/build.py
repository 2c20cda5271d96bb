"""Run compiled tag SQL in the DuckDB warehouse and store the results for a day.

Storage (all in schema ``tags``):

- ``tags._src_<group>(as_of, customer_id, <tag columns>)``: one table per storage
  group (a fused source, or a standalone tag), one row per customer with data. Row tags
  over ``raw.customers`` (one row per customer, no aggregate) are the exception: the
  wide SELECT scans that table anyway, so they are computed there and
  ``tags._src_customers`` is a view of the group's values for the last built day.
- ``tags.tag_<name>``: a view per tag, ``(as_of, customer_id, <name>)``.
- ``tags.customer_tags``: the wide table (DESIGN §4), joined from the group tables
  with derived tags computed in the same SELECT.
- ``tags.catalog``: see :mod:`tags.catalog`.

Every write replaces one day's rows in one transaction (delete + insert), so
re-running a day is idempotent and a failure leaves the previous data in place.
Building a subset of a group's tags keeps the other tags' stored values of that day.
Dagster (``assets/tags.py``), the CLI and the benchmark all call these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

import duckdb
from sqlglot import exp

from kequn.errors import ExecutionError, Location
from kequn.warehouse import transaction
from tags.catalog import Coverage, write_catalog
from tags.compile import (
    TagGroup,
    customer_tags_query,
    day_literal,
    group_query,
    plan_groups,
    pretty,
    registered_customers_query,
    stats_query,
)
from tags.model import Tag, TagProject

WIDE = "tags.customer_tags"
KEY_COLUMNS = (("as_of", "DATE"), ("customer_id", "BIGINT"))


@dataclass(frozen=True)
class TagStats:
    """What one build wrote for one tag on one day."""

    name: str
    rows: int
    """Customers with a non-NULL value stored for the day."""
    coverage: int
    """Customers whose value is neither NULL nor FALSE (defaults included)."""
    customers: int
    """Customers registered by the end of the day."""
    sql: str
    """The SQL that computed the tag (the fused query of its group, or the wide SELECT)."""

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


def _normal_type(text: str) -> str:
    return text.replace(" ", "").upper().replace("TEXT", "VARCHAR")


def _existing_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str] | None:
    schema, name = table.split(".")
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema, name],
    ).fetchall()
    return {col: _normal_type(kind) for col, kind in rows} if rows else None


def _ident(name: str) -> str:
    return exp.to_identifier(name).sql(dialect="duckdb")


def ensure_table(con: duckdb.DuckDBPyConnection, table: str, columns: list[tuple[str, str]],
                 *, drop_stale: bool = True) -> None:
    """Make ``table`` hold exactly the key columns plus ``columns`` with their types.

    Missing columns are added; columns of a changed type are replaced (their old values
    belonged to another definition); columns of tags that no longer exist are dropped.
    """
    wanted = [*KEY_COLUMNS, *columns]
    existing = _existing_columns(con, table)
    if existing is None:
        body = ", ".join(f"{_ident(c)} {t}" for c, t in wanted)
        con.execute(f"CREATE TABLE {table} ({body})")
        return
    names = {c for c, _ in wanted}
    if drop_stale:
        for column in existing:
            if column not in names:
                con.execute(f"ALTER TABLE {table} DROP COLUMN {_ident(column)}")
    for column, kind in columns:
        have = existing.get(column)
        if have is not None and have != _normal_type(kind):
            con.execute(f"ALTER TABLE {table} DROP COLUMN {_ident(column)}")
            have = None
        if have is None:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {_ident(column)} {kind}")


def _group_columns(project: TagProject, group: TagGroup) -> list[tuple[str, str]]:
    return [(name, project[name].sql_type) for name in group.tags]


def _fail(tags: list[Tag], error: duckdb.Error, sql: str) -> ExecutionError:
    names = ", ".join(t.name for t in tags)
    first = str(error).splitlines()[0]
    return ExecutionError(f"running tag(s) {names} failed: {first}",
                          tags[0].body_location if tags else Location())


def _locate_failure(con: duckdb.DuckDBPyConnection, project: TagProject, group: TagGroup,
                    as_of: date, names: list[str]) -> list[Tag]:
    """The tags of a failed fused query whose own query does not bind (all when unknown)."""
    bad = []
    for name in names:
        try:
            con.execute(f"SELECT * FROM ({pretty(group_query(project, group, as_of, [name]))}) "
                        "LIMIT 0")
        except duckdb.Error:
            bad.append(project[name])
    return bad or [project[n] for n in names]


def _registered(con: duckdb.DuckDBPyConnection, as_of: date) -> int:
    row = con.execute(pretty(registered_customers_query(as_of))).fetchone()
    return int(row[0]) if row else 0


def _stats(con: duckdb.DuckDBPyConnection, project: TagProject, table: str, as_of: date,
           names: list[str], customers: int | None,
           sql: Mapping[str, str]) -> dict[str, TagStats]:
    """Rows and coverage of ``names`` in ``table`` for the day, in one scan.

    ``customers`` None means ``table`` holds exactly the registered customers (the wide
    table), so its row count is the customer count.
    """
    row = con.execute(pretty(stats_query(project, table, as_of, names))).fetchone()
    values = dict(zip([d[0] for d in con.description], row, strict=True)) if row else {}
    if customers is None:
        customers = int(values.get("_rows") or 0)
    out = {}
    for name in names:
        tag = project[name]
        covered = int(values.get(f"{name}__covered") or 0)
        if tag.default is not None and tag.default is not False:
            covered = customers  # every registered customer gets a non-NULL, non-FALSE value
        out[name] = TagStats(name, int(values.get(f"{name}__rows") or 0), covered, customers,
                             sql[name])
    return out


def build_tags(con: duckdb.DuckDBPyConnection, project: TagProject, as_of: date,
               names: Iterable[str] | None = None) -> dict[str, TagStats]:
    """Compute and store the atomic tags ``names`` (default: all) for day ``as_of``.

    Tags of one source run as one fused query. Each group's day is replaced in one
    transaction; when only some of a group's tags are selected, the other tags' stored
    values for that day are kept. Raises ExecutionError naming the tag file on failure.
    """
    groups = plan_groups(project)
    selected = list(names) if names is not None else [t.name for t in project.atomic()]
    for name in selected:
        if name not in project.tags or project[name].kind != "atomic":
            raise ValueError(f"'{name}' is not an atomic tag of this project")
    customers = _registered(con, as_of)
    stats: dict[str, TagStats] = {}
    for group in groups:
        chosen = [n for n in group.tags if n in selected]
        if chosen:
            stats.update(_build_group(con, project, group, as_of, chosen, customers))
    return stats


def measure_tags(con: duckdb.DuckDBPyConnection, project: TagProject, as_of: date,
                 names: Iterable[str]) -> dict[str, TagStats]:
    """Rows and coverage of already stored atomic tags for ``as_of``, computing nothing new
    (row tags over raw.customers, never stored, are measured from their view)."""
    wanted = list(names)
    customers = _registered(con, as_of)
    stats: dict[str, TagStats] = {}
    for group in plan_groups(project):
        chosen = [n for n in group.tags if n in wanted]
        if not chosen:
            continue
        if group.inline:
            stats.update(_build_inline_group(con, project, group, as_of, chosen, customers))
        elif _relation_kind(con, group.table) == "BASE TABLE":
            sql = pretty(group_query(project, group, as_of, chosen))
            stats.update(_stats(con, project, group.table, as_of, chosen, customers,
                                dict.fromkeys(chosen, sql)))
        else:
            stats.update({n: TagStats(n, 0, 0, customers, "") for n in chosen})
    return stats


def _relation_kind(con: duckdb.DuckDBPyConnection, relation: str) -> str | None:
    schema, name = relation.split(".")
    row = con.execute("SELECT table_type FROM information_schema.tables "
                      "WHERE table_schema = ? AND table_name = ?", [schema, name]).fetchone()
    return row[0] if row else None


def _drop_if(con: duckdb.DuckDBPyConnection, relation: str, kind: str) -> None:
    """Drop ``relation`` when it exists as ``kind`` ('VIEW' or 'BASE TABLE')."""
    if _relation_kind(con, relation) == kind:
        con.execute(f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} {relation}")


def _build_inline_group(con: duckdb.DuckDBPyConnection, project: TagProject, group: TagGroup,
                        as_of: date, chosen: list[str], customers: int) -> dict[str, TagStats]:
    """Row tags over raw.customers: nothing stored; ``group.table`` becomes a view of the
    group's values for ``as_of`` (checked and measured here, computed again in the wide
    table's SELECT, which scans raw.customers anyway)."""
    sql = pretty(group_query(project, group, as_of))
    day = day_literal(as_of).sql(dialect="duckdb")
    try:
        with transaction(con):
            _drop_if(con, group.table, "BASE TABLE")
            con.execute(f"CREATE OR REPLACE VIEW {group.table} AS "
                        f"SELECT {day} AS as_of, q.* FROM ({sql}) AS q")
            return _stats(con, project, group.table, as_of, chosen, customers,
                          dict.fromkeys(chosen, sql))
    except duckdb.Error as error:
        raise _fail(_locate_failure(con, project, group, as_of, chosen), error, sql) from error


def _build_group(con: duckdb.DuckDBPyConnection, project: TagProject, group: TagGroup,
                 as_of: date, chosen: list[str], customers: int) -> dict[str, TagStats]:
    if group.inline:
        return _build_inline_group(con, project, group, as_of, chosen, customers)
    query = group_query(project, group, as_of, chosen)
    sql = pretty(query)
    day = day_literal(as_of).sql(dialect="duckdb")
    table = group.table
    cols = ", ".join(_ident(n) for n in chosen)
    try:
        with transaction(con):
            _drop_if(con, table, "VIEW")
            ensure_table(con, table, _group_columns(project, group))
            if len(chosen) == len(group.tags):
                con.execute(f"DELETE FROM {table} WHERE as_of = {day}")
                con.execute(f"INSERT INTO {table} (as_of, customer_id, {cols}) "
                            f"SELECT {day}, q.customer_id, {_q(chosen)} FROM ({sql}) AS q")
            else:
                _merge_subset(con, project, group, day, chosen, sql)
            for name in chosen:
                con.execute(f"CREATE OR REPLACE VIEW tags.{_ident('tag_' + name)} AS "
                            f"SELECT as_of, customer_id, {_ident(name)} FROM {table}")
            return _stats(con, project, table, as_of, chosen, customers,
                          dict.fromkeys(chosen, sql))
    except duckdb.Error as error:
        raise _fail(_locate_failure(con, project, group, as_of, chosen), error, sql) from error


def _q(names: list[str]) -> str:
    return ", ".join(f"q.{_ident(n)}" for n in names)


def _merge_subset(con: duckdb.DuckDBPyConnection, project: TagProject, group: TagGroup,
                  day: str, chosen: list[str], sql: str) -> None:
    """Replace the day's rows keeping the stored values of the group's other tags."""
    others = [n for n in group.tags if n not in chosen]
    table = group.table
    new = ", ".join(f"n.{_ident(c)}" for c in chosen)
    old = ", ".join(f"o.{_ident(c)}" for c in others)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _kequn_new AS {sql}")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _kequn_merged AS "
        f"SELECT {day} AS as_of, coalesce(n.customer_id, o.customer_id) AS customer_id, "
        f"{new}, {old} FROM _kequn_new AS n FULL OUTER JOIN "
        f"(SELECT * FROM {table} WHERE as_of = {day}) AS o ON n.customer_id = o.customer_id")
    con.execute(f"DELETE FROM {table} WHERE as_of = {day}")
    cols = ", ".join(_ident(c) for c in [*chosen, *others])
    con.execute(f"INSERT INTO {table} (as_of, customer_id, {cols}) "
                f"SELECT as_of, customer_id, {cols} FROM _kequn_merged")
    con.execute("DROP TABLE _kequn_new")
    con.execute("DROP TABLE _kequn_merged")


def build_customer_tags(con: duckdb.DuckDBPyConnection, project: TagProject,
                        as_of: date) -> CustomerTagsResult:
    """Build ``tags.customer_tags`` and ``tags.catalog`` for ``as_of`` from stored atomic tags.

    Derived tags are computed inside the wide SELECT. Atomic tags never built for the
    day read as missing (their default, else NULL). One transaction: the wide table's day,
    the catalog's day and the derived-tag views are replaced together.
    """
    groups = plan_groups(project)
    query = customer_tags_query(project, groups, as_of)
    sql = pretty(query)
    day = day_literal(as_of).sql(dialect="duckdb")
    names = list(project.tags)
    cols = ", ".join(_ident(n) for n in names)
    try:
        with transaction(con):
            for group in groups:
                if not group.inline:
                    _drop_if(con, group.table, "VIEW")
                    ensure_table(con, group.table, _group_columns(project, group))
            ensure_table(con, WIDE, [(t.name, t.sql_type) for t in project.tags.values()])
            con.execute(f"DELETE FROM {WIDE} WHERE as_of = {day}")
            con.execute(f"INSERT INTO {WIDE} (as_of, customer_id, {cols}) {sql}")
            stats = _stats(con, project, WIDE, as_of, names, None, dict.fromkeys(names, sql))
            customers = next(iter(stats.values())).customers if stats else 0
            catalog_rows = write_catalog(
                con, project, as_of,
                {n: Coverage(s.coverage, customers) for n, s in stats.items()})
            missing = tuple(n for g in groups if not g.inline and not _has_day(con, g.table, day)
                            for n in g.tags)
            in_wide = [t.name for t in project.derived()] + [
                n for g in groups if g.inline for n in g.tags]
            for name in in_wide:  # tags whose values live only in the wide table
                con.execute(f"CREATE OR REPLACE VIEW tags.{_ident('tag_' + name)} AS "
                            f"SELECT as_of, customer_id, {_ident(name)} FROM {WIDE}")
    except duckdb.Error as error:
        raise ExecutionError(f"building {WIDE} failed: {str(error).splitlines()[0]}",
                             Location(project.root)) from error
    return CustomerTagsResult(customers, sql, stats, catalog_rows, missing)


def _has_day(con: duckdb.DuckDBPyConnection, table: str, day: str) -> bool:
    return con.execute(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE as_of = {day})"
                       ).fetchone()[0]
