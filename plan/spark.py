"""Compiled queries as Spark SQL: the day bound as literals, tables renamed to views.

The plan's queries are DuckDB-dialect sqlglot trees reading ``$as_of``/``$as_of_end``
(:mod:`plan.params`). Spark SQL has no named parameters in ``spark.sql`` that sqlglot
renders, so :func:`spark_sql` binds each parameter as a typed literal *in the tree*
(``CAST('2026-11-21' AS DATE)``, never pasted text), renames each ``schema.table`` to the
temporary view the Spark engine registers for it (:func:`view_name`), and lets sqlglot
write Spark's dialect. What does not translate faithfully is kept out by the
portable-subset lint (:mod:`plan.portable`). Pure: sqlglot only.

>>> import sqlglot
>>> from datetime import date
>>> from plan.params import day_values
>>> q = sqlglot.parse_one("SELECT id FROM raw.loans WHERE paid_at < $as_of_end", read="duckdb")
>>> spark_sql(q, day_values(date(2026, 11, 21)))
"SELECT id FROM raw__loans AS loans WHERE paid_at < CAST('2026-11-22 00:00:00' AS TIMESTAMP)"
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from sqlglot import exp

from kequn.tables import Table
from plan.division import without_hugeint


def view_name(table: Table) -> str:
    """The Spark temporary view standing for ``schema.table``: ``schema__table``."""
    return f"{table[0]}__{table[1]}"


def literal(value: Any) -> exp.Expression:
    """A typed SQL literal for a parameter value (date, timestamp, number, text, bool)."""
    if isinstance(value, datetime):
        return exp.cast(exp.Literal.string(value.strftime("%Y-%m-%d %H:%M:%S")),
                        exp.DataType.build("TIMESTAMP"))
    if isinstance(value, date):
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("DATE"))
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float)):
        return exp.Literal.number(value)
    return exp.Literal.string(str(value))


def tables_of(node: exp.Expression) -> list[Table]:
    """Every ``schema.table`` the tree reads (CTE names, which have no schema, aside)."""
    return list(dict.fromkeys((t.db, t.name) for t in node.find_all(exp.Table) if t.db))


def bind(node: exp.Expression, values: Mapping[str, Any]) -> exp.Expression:
    """A copy of ``node`` with every ``$name`` replaced by the literal of ``values[name]``
    and every ``schema.table`` by its view (aliases kept); the exact division of
    :mod:`plan.division` written with Spark's types (``HUGEINT`` is ``DECIMAL(38, 0)``)."""

    def swap(sub: exp.Expression) -> exp.Expression:
        if isinstance(sub, exp.Placeholder) and sub.name:
            return literal(values[sub.name])
        if isinstance(sub, exp.Table) and sub.db:
            renamed = exp.to_table(view_name((sub.db, sub.name)))
            alias = sub.args.get("alias")
            if alias is None:
                # keep ``raw.loans.col`` style references working: alias the view as the table
                alias = exp.TableAlias(this=exp.to_identifier(sub.name))
            renamed.set("alias", alias.copy())
            return renamed
        return sub

    return without_hugeint(node).transform(swap)


def spark_sql(node: exp.Expression, values: Mapping[str, Any]) -> str:
    """``node`` bound to ``values`` and written in Spark's dialect."""
    return bind(node, values).sql(dialect="spark")
