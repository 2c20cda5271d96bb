"""The parameters of compiled SQL: the day is bound when a query runs, never pasted in.

Every compiled query reads the business day through ``$as_of`` (DATE, the day D) and
``$as_of_end`` (TIMESTAMP, D + 1 day 00:00; an event counts iff it is earlier), plus any
other named parameter (``$segment``). A :class:`Query` is SQL text with the names of the
parameters it uses; :meth:`Query.bind` picks exactly those (DuckDB refuses extra ones).

>>> from datetime import date
>>> import sqlglot
>>> q = query(sqlglot.parse_one("SELECT 1 WHERE x < $as_of_end", read="duckdb"))
>>> q.params, q.bind(day_values(date(2025, 3, 1)))
(('as_of_end',), {'as_of_end': datetime.datetime(2025, 3, 2, 0, 0)})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlglot import exp

from kequn.days import day_end

AS_OF = "as_of"
AS_OF_END = "as_of_end"


def as_of() -> exp.Placeholder:
    """``$as_of``: the business day."""
    return exp.Placeholder(this=AS_OF)


def as_of_end() -> exp.Placeholder:
    """``$as_of_end``: the exclusive end of the business day."""
    return exp.Placeholder(this=AS_OF_END)


def day_values(day: date) -> dict[str, Any]:
    """The values of ``$as_of`` and ``$as_of_end`` for ``day``."""
    return {AS_OF: day, AS_OF_END: day_end(day)}


@dataclass(frozen=True)
class Query:
    """A compiled statement: DuckDB SQL and the names of the parameters it takes."""

    sql: str
    params: tuple[str, ...] = ()

    def bind(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters this statement takes, from ``values`` (a missing one is a
        KeyError naming it)."""
        return {name: values[name] for name in self.params}


def placeholders(node: exp.Expression) -> tuple[str, ...]:
    """The named parameters ``node`` uses, each once, in order."""
    return tuple(dict.fromkeys(p.name for p in node.find_all(exp.Placeholder) if p.name))


def query(node: exp.Expression, *, pretty: bool = True) -> Query:
    """``node`` as a :class:`Query` in DuckDB's dialect."""
    return Query(node.sql(dialect="duckdb", pretty=pretty), placeholders(node))
