"""Each tag's value distribution for a day, in one aggregate pass over the wide table.

* boolean, string and integer tags: their most frequent values (``TOP`` of them, the rest
  summed as ``(other)``), plus ``(null)`` for customers without a value;
* decimal and date tags: quartile buckets (``[min, q1]``, ``(q1, median]``, ...) with the
  customers in each, plus ``(null)``.

All tags share one ``SELECT`` (``histogram`` / ``quantile_disc`` per column, two
``count_if`` for a boolean) over
``tags.customer_tags`` for the day; the buckets go to ``tags.distribution``
(``as_of, name, rank, bucket, customers``), replaced per day in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from sqlglot import exp

from kequn.tables import CUSTOMER_TAGS, DISTRIBUTION, qualified
from plan.tags import day_rows
from project.tag import Tag
from warehouse.db import insert_rows, run, transaction

if TYPE_CHECKING:
    import duckdb

TOP = 8
QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)
CATEGORICAL = ("boolean", "string", "integer")


@dataclass(frozen=True)
class Bucket:
    """One row of a distribution: a value (or a range) and how many customers have it."""

    bucket: str
    customers: int


def distribution_columns(tags: Mapping[str, Tag]) -> list[exp.Expression]:
    """Per tag ``<name>__hist`` (value -> count), ``<name>__true`` and ``<name>__false``
    (boolean tags: two counts cost less than a histogram) or ``<name>__q`` (quartiles),
    and ``<name>__nulls``: aggregates any scan of the day's wide rows can carry."""
    columns: list[exp.Expression] = []
    for name, tag in tags.items():
        col = exp.column(name)
        if tag.value_type == "boolean":
            columns.append(exp.CountIf(this=col.copy()).as_(f"{name}__true"))
            columns.append(exp.CountIf(this=exp.not_(col.copy())).as_(f"{name}__false"))
        elif tag.value_type in CATEGORICAL:
            columns.append(exp.Anonymous(this="histogram", expressions=[col]).as_(f"{name}__hist"))
        else:
            quantiles = exp.Array(expressions=[exp.Literal.number(q) for q in QUANTILES])
            columns.append(exp.Anonymous(this="quantile_disc", expressions=[col.copy(), quantiles])
                           .as_(f"{name}__q"))
        columns.append(exp.CountIf(this=exp.Is(this=col.copy(), expression=exp.Null()))
                       .as_(f"{name}__nulls"))
    return columns


def distribution_query(tags: Mapping[str, Tag], relation: exp.Expression) -> exp.Select:
    """:func:`distribution_columns` plus ``_rows``, over the day's rows of ``relation``."""
    return exp.select(exp.Count(this=exp.Star()).as_("_rows"), *distribution_columns(tags)
                      ).from_(day_rows(relation).subquery("d"))


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _top(histogram: Mapping[object, int], nulls: int) -> list[Bucket]:
    ordered = sorted(histogram.items(), key=lambda kv: (-kv[1], _text(kv[0])))
    buckets = [Bucket(_text(value), int(count)) for value, count in ordered[:TOP]]
    rest = sum(int(count) for _, count in ordered[TOP:])
    if rest:
        buckets.append(Bucket("(other)", rest))
    if nulls:
        buckets.append(Bucket("(null)", nulls))
    return buckets


def _quartile_cases(cuts: list) -> list[tuple[object, object, str]]:
    bounds = list(dict.fromkeys(cuts))  # equal quantiles merge into one bucket
    cases = []
    for i in range(len(bounds) - 1 if len(bounds) > 1 else 1):
        low, high = bounds[i], bounds[min(i + 1, len(bounds) - 1)]
        cases.append((low, high, "[" if i == 0 else "("))
    return cases


def _count_in(con: duckdb.DuckDBPyConnection, cases: Mapping[str, list], day: date
              ) -> dict[str, list[int]]:
    """Customers per bucket of every decimal or date tag, in one pass."""
    columns = []
    for name, buckets in cases.items():
        col = exp.column(name)
        for low, high, bracket in buckets:
            lower = (exp.GTE if bracket == "[" else exp.GT)(
                this=col.copy(), expression=exp.convert(low))
            upper = exp.LTE(this=col.copy(), expression=exp.convert(high))
            columns.append(exp.CountIf(this=exp.and_(lower, upper)))
    if not columns:
        return {}
    query = exp.select(*columns).from_(day_rows(exp.to_table(qualified(CUSTOMER_TAGS)))
                                       .subquery("d"))
    counts = iter(int(n) for n in run(con, query, day).fetchall()[0])
    return {name: [next(counts) for _ in buckets] for name, buckets in cases.items()}


def distributions_from(con: duckdb.DuckDBPyConnection, tags: Mapping[str, Tag],
                       values: Mapping[str, object], day: date) -> dict[str, list[Bucket]]:
    """Every tag's buckets from the aggregates of :func:`distribution_columns` (``values``
    by column name); the quartile buckets of decimal and date tags are counted in one
    more pass over the day's wide rows."""
    cases = {name: _quartile_cases(values[f"{name}__q"]) for name, tag in tags.items()
             if tag.value_type not in CATEGORICAL and values.get(f"{name}__q")}
    counts = _count_in(con, cases, day)
    out = {}
    for name, tag in tags.items():
        nulls = int(values.get(f"{name}__nulls") or 0)  # type: ignore[call-overload]
        if tag.value_type == "boolean":
            flags = {flag: int(values.get(f"{name}__{str(flag).lower()}") or 0)  # type: ignore[call-overload]
                     for flag in (True, False)}
            out[name] = _top({flag: n for flag, n in flags.items() if n}, nulls)
            continue
        if tag.value_type in CATEGORICAL:
            out[name] = _top(values.get(f"{name}__hist") or {}, nulls)  # type: ignore[arg-type]
            continue
        out[name] = [Bucket(f"{bracket}{_text(low)}, {_text(high)}]", n) for
                     (low, high, bracket), n in zip(cases.get(name, []), counts.get(name, []),
                                                    strict=True)]
        if nulls:
            out[name].append(Bucket("(null)", nulls))
    return out


def tag_distributions(con: duckdb.DuckDBPyConnection, tags: Mapping[str, Tag],
                      day: date) -> dict[str, list[Bucket]]:
    """Every tag's buckets for ``day`` from ``tags.customer_tags`` (one pass, and one more
    for the quartile buckets of decimal and date tags)."""
    if not tags:
        return {}
    cursor = run(con, distribution_query(tags, exp.to_table(qualified(CUSTOMER_TAGS))), day)
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    values = dict(zip(names, rows[0], strict=True)) if rows else {}
    return distributions_from(con, tags, values, day)


def store_distributions(con: duckdb.DuckDBPyConnection, day: date,
                        distributions: Mapping[str, list[Bucket]]) -> int:
    """Replace the day's rows of ``tags.distribution``; returns the rows written."""
    rows = [(day, name, rank, b.bucket, b.customers)
            for name, buckets in sorted(distributions.items())
            for rank, b in enumerate(buckets, start=1)]
    table = qualified(DISTRIBUTION)
    with transaction(con):
        con.execute(f"DELETE FROM {table} WHERE as_of = ?", [day])
        insert_rows(con, table, rows)
    return len(rows)
