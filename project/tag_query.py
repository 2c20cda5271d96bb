"""Checks on an atomic tag's SELECT: it only reads ``raw.*``, returns its two columns,
and uses only the ``$as_of`` and ``$as_of_end`` placeholders.

Tags are written by the data platform and reviewed like code; these checks catch
mistakes (a misspelt output column, reading another tag's table, a second statement),
each at its ``file:line:col``.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError as SqlglotParseError
from sqlglot.errors import TokenError

from kequn.errors import ParseError, ValidationError, did_you_mean, location_at
from kequn.header import DefinitionFile
from kequn.sqlsource import clean_description, node_location, parse_error_location
from kequn.tables import RAW_SCHEMA

PLACEHOLDERS = ("as_of", "as_of_end")
"""``$as_of`` is the day D (DATE); ``$as_of_end`` is D + 1 day (TIMESTAMP)."""
ALLOWED_STATEMENTS = (exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery,
                      exp.CTE, exp.With)
FORBIDDEN_NODES = (exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Command,
                   exp.Alter, exp.Merge, exp.Copy)


def check_query(d: DefinitionFile, name: str) -> exp.Query:
    """Parse the SELECT body and check what it may read and what it returns."""
    try:
        statements = [s for s in sqlglot.parse(d.body, read="duckdb") if s is not None]
    except SqlglotParseError as err:
        first = err.errors[0] if err.errors else {}
        desc = clean_description(first.get("description") or str(err))
        raise ParseError(f"SQL does not parse: {desc}",
                         parse_error_location(first, d.path, d.text)) from err
    except TokenError as err:
        raise ParseError(f"SQL does not parse: {err}", d.body_location) from err
    if len(statements) != 1:
        where = node_location(statements[1], d.path, d.text) if len(statements) > 1 \
            else d.body_location
        raise ValidationError("a tag file holds exactly one SELECT", where)
    query = statements[0]
    if not isinstance(query, exp.Query):
        raise ValidationError("an atomic tag's body must be a SELECT", d.body_location)
    for node in query.walk():
        if isinstance(node, FORBIDDEN_NODES):
            raise ValidationError("a tag query may only read (SELECT)",
                                  node_location(node, d.path, d.text))
    _check_placeholders(query, d)
    _check_tables(query, d)
    _check_outputs(query, d, name)
    return query


def _check_placeholders(query: exp.Query, d: DefinitionFile) -> None:
    for node in query.find_all(exp.Placeholder):
        key = node.name
        if key not in PLACEHOLDERS:
            offset = d.text.find(f"${key}")
            where = location_at(d.path, d.text, offset) if offset >= 0 else d.body_location
            raise ValidationError(
                f"unknown placeholder '${key}' (use $as_of or $as_of_end)", where,
                hint=did_you_mean(key, PLACEHOLDERS))


def _cte_names(query: exp.Expression) -> set[str]:
    return {cte.alias_or_name for cte in query.find_all(exp.CTE)}


def _check_tables(query: exp.Query, d: DefinitionFile) -> None:
    ctes = _cte_names(query)
    for table in query.find_all(exp.Table):
        if not table.db and table.name in ctes:
            continue
        if not isinstance(table.this, exp.Identifier) or table.db.lower() != RAW_SCHEMA \
                or table.catalog:
            raise ValidationError(
                f"tag queries read raw.<table> only, not '{table.sql(dialect='duckdb')}'",
                node_location(table, d.path, d.text))


def _check_outputs(query: exp.Query, d: DefinitionFile, name: str) -> None:
    select = query
    while isinstance(select, exp.SetOperation):
        select = select.this
    if not isinstance(select, exp.Select):
        return
    projections = select.expressions
    if not projections:
        raise ValidationError(f"the query must return customer_id and {name}",
                              node_location(select, d.path, d.text))
    outputs = [p.alias_or_name.lower() for p in projections]
    if any(isinstance(p, exp.Star) or (p.find(exp.Star) and not p.find(exp.Count))
           for p in projections):
        raise ValidationError(
            f"list the columns: the query must return customer_id and {name}",
            node_location(projections[0], d.path, d.text))
    if sorted(outputs) == sorted(["customer_id", name]):
        return
    wanted = {"customer_id", name}
    wrong = next((p for p, out in zip(projections, outputs, strict=True)
                  if out not in wanted or outputs.count(out) > 1), projections[-1])
    shown = ", ".join(o or "?" for o in outputs)
    message = (f"the query must return exactly customer_id and {name}, "
               f"but returns {shown}")
    alias = wrong.alias_or_name.lower()
    hint = did_you_mean(alias, [name]) if alias and alias not in wanted else ""
    raise ValidationError(message, node_location(wrong, d.path, d.text), hint=hint)


def query_tables(query: exp.Query) -> tuple[str, ...]:
    """Every ``schema.table`` the query reads (its CTEs excluded), in order."""
    ctes = _cte_names(query)
    names = [f"{t.db}.{t.name}".lower() for t in query.find_all(exp.Table)
             if t.db or t.name not in ctes]
    return tuple(dict.fromkeys(names))


def source_table(query: exp.Query) -> str:
    """The ``schema.table`` of the query's FROM clause (else the first table it reads)."""
    if isinstance(query, exp.Select):
        source = query.args.get("from_") or query.args.get("from")
        if source is not None and isinstance(source.this, exp.Table) and source.this.db:
            return f"{source.this.db}.{source.this.name}".lower()
    return query_tables(query)[0] if query_tables(query) else ""
