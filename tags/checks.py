"""Data checks on built tags: one row per customer, values in domain, stable coverage.

Each check returns a :class:`CheckOutcome` (passed, a sentence, plain metadata). The
Dagster asset checks in ``assets/tags.py`` run these after a build; they are plain
functions so tests can call them directly too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

import duckdb
from sqlglot import exp

from plan.tags import day_rows, domain_condition, registered_customers_query
from project.tag import Tag
from tags.catalog import read_coverage
from warehouse.db import run

DEFAULT_MAX_COVERAGE_CHANGE = 0.5


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one check."""

    passed: bool
    description: str
    metadata: dict[str, object] = field(default_factory=dict)


def _scalar(con: duckdb.DuckDBPyConnection, node: exp.Expression, day: date) -> int:
    row = run(con, node, day).fetchone()
    return int(row[0] or 0) if row else 0


def relation_name(relation: exp.Expression) -> str:
    """How a relation is called in messages: its table name, or a computed one's alias."""
    if isinstance(relation, exp.Table):
        return relation.sql(dialect="duckdb")
    return f"tags.{relation.alias_or_name} (computed)"


def one_row_per_customer(con: duckdb.DuckDBPyConnection, relation: exp.Expression,
                         as_of: date, *, every_customer: bool = False,
                         counts: tuple[int, int] | None = None) -> CheckOutcome:
    """No customer has two rows for the day (and, with ``every_customer``, none is missing).

    ``counts`` (rows, distinct customers) of the day, when the build's statistics scan
    already counted them (:func:`plan.tags.stats_query`), spares a second scan.
    """
    table = relation_name(relation)
    if counts is None:
        query = exp.select(
            exp.Count(this=exp.Star()).as_("n"),
            exp.Count(this=exp.Distinct(expressions=[exp.column("customer_id")])).as_("d"),
        ).from_(day_rows(relation.copy()).subquery("d"))
        row = run(con, query, as_of).fetchone()
        counts = (int(row[0]), int(row[1])) if row else (0, 0)
    rows, distinct = counts
    duplicates = rows - distinct
    meta: dict[str, object] = {"rows": rows, "duplicate_rows": duplicates}
    if every_customer:
        customers = _scalar(con, registered_customers_query(), as_of)
        meta["customers"] = customers
        if distinct != customers:
            return CheckOutcome(False, f"{table} has {distinct} customers for {as_of}, "
                                       f"expected {customers} registered customers", meta)
    if duplicates:
        return CheckOutcome(False, f"{duplicates} duplicate customer rows in {table} "
                                   f"for {as_of}", meta)
    return CheckOutcome(True, f"one row per customer in {table} for {as_of}", meta)


def column_types(con: duckdb.DuckDBPyConnection, table: exp.Table) -> dict[str, str]:
    """``{column: type}`` of a stored table (for :func:`values_in_domain`'s ``types``)."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE "
        "table_schema = ? AND table_name = ?", [table.db, table.name]).fetchall()
    return {name: kind for name, kind in rows}


def values_in_domain(con: duckdb.DuckDBPyConnection, relation: exp.Expression, tag: Tag,
                     as_of: date, *, out_of_domain: int | None = None,
                     types: Mapping[str, str] | None = None) -> CheckOutcome:
    """The stored column has the declared type, and no value of the day is out of domain.

    A computed relation (an inline group's query) casts to the declared type itself, so
    only a stored table's column type is read back (``types``: the table's
    :func:`column_types`, when already read). ``out_of_domain``, when the build's
    statistics scan already counted it, spares a scan (a sample is read only when some
    values are outside).
    """
    table = relation_name(relation)
    declared = tag.sql_type.replace(" ", "").upper()
    if isinstance(relation, exp.Table):
        known = types if types is not None else column_types(con, relation)
        stored = known[tag.name].replace(" ", "").upper() if tag.name in known else None
        if stored != declared:
            return CheckOutcome(False, f"column {tag.name} of {table} is {stored}, "
                                       f"declared {tag.value_type} ({declared})",
                                {"stored_type": str(stored), "declared_type": declared})
    condition = domain_condition(tag)
    if condition is None:
        return CheckOutcome(True, f"{tag.name} is {tag.value_type}; no domain declared",
                            {"declared_type": declared})
    outside = day_rows(relation.copy()).where(condition, copy=False).subquery("d")
    bad = out_of_domain if out_of_domain is not None else _scalar(
        con, exp.select(exp.Count(this=exp.Star())).from_(outside), as_of)
    sample_query = exp.select(exp.column(tag.name)).distinct().from_(outside.copy()).limit(5)
    sample = [str(r[0]) for r in run(con, sample_query, as_of).fetchall()] if bad else []
    meta: dict[str, object] = {"out_of_domain": bad, "sample": ", ".join(sample)}
    if bad:
        return CheckOutcome(False, f"{bad} values of {tag.name} are outside its domain "
                                   f"(e.g. {', '.join(sample)})", meta)
    return CheckOutcome(True, f"every value of {tag.name} is within its domain", meta)


def coverage_stable(con: duckdb.DuckDBPyConnection, tag: Tag, as_of: date, coverage: int,
                    ratio: float, *,
                    previous_day: Mapping[str, tuple[int, float]] | None = None) -> CheckOutcome:
    """Coverage is not zero and moved at most ``tag.max_coverage_change`` since the day before.

    The previous day's coverage comes from ``tags.catalog`` (``previous_day``: its
    :func:`tags.catalog.read_coverage`, when already read); without it only the zero rule
    applies.
    """
    meta: dict[str, object] = {"coverage": coverage, "coverage_ratio": round(ratio, 6),
                               "max_change": tag.max_coverage_change}
    if coverage == 0:
        return CheckOutcome(False, f"{tag.name} covers no customer on {as_of}", meta)
    if previous_day is None:
        previous_day = read_coverage(con, as_of - timedelta(days=1))
    previous = previous_day.get(tag.name)
    if previous is None:
        return CheckOutcome(True, f"{tag.name} covers {coverage} customers; no previous "
                                  "day to compare with", meta)
    prev_coverage, prev_ratio = previous
    meta["previous_coverage"] = prev_coverage
    meta["previous_coverage_ratio"] = round(prev_ratio, 6)
    change = abs(ratio - prev_ratio) / prev_ratio if prev_ratio else float("inf")
    meta["change"] = round(change, 6) if change != float("inf") else "from zero"
    if change > tag.max_coverage_change:
        return CheckOutcome(False, f"coverage of {tag.name} moved from {prev_ratio:.2%} to "
                                   f"{ratio:.2%} (more than {tag.max_coverage_change:.0%})", meta)
    return CheckOutcome(True, f"coverage of {tag.name} {ratio:.2%} (previous day "
                              f"{prev_ratio:.2%})", meta)
