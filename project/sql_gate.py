"""The gate on analysts' SQL segments: only one read-only SELECT over allowed tables.

The SQL of a ``kind sql`` segment is untrusted. :func:`gate` parses it with sqlglot and
accepts only: exactly one statement (a trailing comment is fine); a query (SELECT / set
operation) built from an allow-list of node types, walked over the whole tree so nothing
hides in a CTE or subquery; tables only from ``raw.*``, ``tags.*`` and
``segments.members`` (or CTEs of the query); no table functions, no unknown functions
(``query()``, ``query_table()``, ``read_csv`` ...); exactly one output column named
``customer_id``. The only parameter is ``$as_of`` (the day being built).

The gate never executes anything; the query it returns runs later in a restricted,
read-only process (:mod:`segments.sandbox`), regenerated from the checked tree.
"""

from __future__ import annotations

from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError as SqlglotParseError
from sqlglot.errors import TokenError
from sqlglot.tokens import Tokenizer, TokenType

from kequn.errors import (
    CompileError,
    KequnError,
    Location,
    ParseError,
    location_at,
    raise_collected,
)
from kequn.sqlsource import node_location

AS_OF = "as_of"
ALLOWED_SCHEMAS = {"raw": None, "tags": None, "segments": {"members"}}
"""schema -> allowed tables (None: every table of the schema)."""

ALLOWED_NODES: tuple[type[exp.Expression], ...] = (
    # query structure
    exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery, exp.From, exp.Join,
    exp.Where, exp.Group, exp.Having, exp.Qualify, exp.Order, exp.Ordered, exp.Limit,
    exp.Offset, exp.With, exp.CTE, exp.TableAlias, exp.Table, exp.Column, exp.Identifier,
    exp.Star, exp.Alias, exp.Distinct, exp.Tuple, exp.Window, exp.WindowSpec,
    # values and operators
    exp.Literal, exp.Boolean, exp.Null, exp.Paren, exp.And, exp.Or, exp.Not, exp.EQ, exp.NEQ,
    exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Is, exp.In, exp.Between, exp.Like, exp.ILike,
    exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.Neg, exp.Case, exp.If,
    exp.Coalesce, exp.Nullif, exp.Cast, exp.TryCast, exp.DataType, exp.DataTypeParam,
    exp.Exists, exp.Any, exp.All, exp.Interval, exp.Var, exp.Placeholder, exp.DPipe,
    exp.Concat,
    # aggregates and windows
    exp.Count, exp.CountIf, exp.Sum, exp.Avg, exp.Min, exp.Max, exp.Filter, exp.ArgMax,
    exp.ArgMin, exp.RowNumber, exp.Rank, exp.DenseRank, exp.Lag, exp.Lead,
    # scalar functions
    exp.CurrentDate, exp.DateDiff, exp.DateAdd, exp.DateSub, exp.DateTrunc, exp.TimestampTrunc,
    exp.Extract, exp.Date, exp.TsOrDsToDate, exp.TsOrDsAdd, exp.Abs, exp.Round, exp.Floor,
    exp.Ceil, exp.Greatest, exp.Least, exp.Lower, exp.Upper, exp.Length, exp.Substring,
    exp.Trim,
)
_WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter,
           exp.Copy, exp.Attach, exp.Detach, exp.Pragma, exp.Set, exp.Command, exp.Use,
           exp.Install, exp.Export, exp.TruncateTable)

def _loc(path: Path | None, source: str, node: exp.Expression) -> Location:
    return node_location(node, path, source)


def _parse(sql: str, path: Path | None, source: str) -> list[exp.Expression]:
    try:
        statements = sqlglot.parse(sql, read="duckdb")
    except (SqlglotParseError, TokenError) as exc:
        detail = exc.errors[0] if isinstance(exc, SqlglotParseError) and exc.errors else {}
        line, col = detail.get("line") or 1, detail.get("col") or 1
        message = detail.get("description") or str(exc).splitlines()[0]
        raise ParseError(f"cannot parse the SQL: {message}",
                         Location(path, line, col, source)) from exc
    return [s for s in statements if s is not None and not isinstance(s, exp.Semicolon)]


def gate(sql: str, path: Path | None = None, source: str | None = None) -> exp.Query:
    """Check an analyst's SQL and return the single query it holds.

    ``sql`` keeps its position in ``source`` (a definition body keeps the header
    blanked), so every error names the file's line and column. Raises KequnErrors
    listing every violation; never executes anything.

    >>> gate("SELECT customer_id FROM raw.customers -- the lot").sql()
    'SELECT customer_id FROM raw.customers /* the lot */'
    """
    source = source if source is not None else sql
    statements = _parse(sql, path, source)
    if not statements:
        raise ParseError("the SQL is empty; write one SELECT returning customer_id",
                         Location(path, 1, 1, source))
    starts = _statement_starts(sql)
    if len(statements) > 1:
        where = (location_at(path, source, starts[1]) if len(starts) > 1
                 else _loc(path, source, statements[1]))
        raise CompileError(f"exactly one statement is allowed, found {len(statements)} "
                           f"(a second one starts here: {_kind(statements[1])})", where)
    query = statements[0]
    if not isinstance(query, exp.Query) or isinstance(query, _WRITES):
        where = location_at(path, source, starts[0]) if starts else _loc(path, source, query)
        raise CompileError(f"only a SELECT is allowed, not {_kind(query)}", where)
    errors: list[KequnError] = []
    cte_names = {cte.alias_or_name.lower() for cte in query.find_all(exp.CTE)}
    for node in _walk(query):
        where = _loc(path, source, node)
        if isinstance(node, _WRITES):
            errors.append(CompileError(f"{_kind(node)} is not allowed (queries only)", where))
        elif isinstance(node, exp.Table):
            errors.extend(_check_table(node, cte_names, where))
        elif isinstance(node, exp.Placeholder):
            if node.name != AS_OF:
                errors.append(CompileError(f"unknown parameter '${node.name}' (only $as_of, "
                                           "the day being built)", where))
        elif not isinstance(node, ALLOWED_NODES):
            what = (f"function {_func_name(node)}()" if isinstance(node, exp.Func)
                    else f"{_kind(node)} '{_short(node)}'")
            errors.append(CompileError(f"{what} is not allowed in a segment query", where))
    raise_collected(errors)
    _check_output(query, path, source)
    return query


def _statement_starts(sql: str) -> list[int]:
    """Source offsets where each statement's first token stands (comments skipped)."""
    try:
        tokens = Tokenizer().tokenize(sql)
    except TokenError:
        return []
    starts: list[int] = []
    expect = True
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            expect = True
        elif expect:
            starts.append(token.start)
            expect = False
    return starts


def _walk(node: exp.Expression):
    """Pre-order walk that stops below nodes already rejected (one error each)."""
    yield node
    if isinstance(node, ALLOWED_NODES) and not isinstance(node, exp.Table):
        for child in node.iter_expressions():
            yield from _walk(child)
    elif isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
        for child in node.iter_expressions():
            if child is not node.this:
                yield from _walk(child)


def _check_table(node: exp.Table, ctes: set[str], where: Location) -> list[KequnError]:
    if not isinstance(node.this, exp.Identifier):
        name = _func_name(node.this) if isinstance(node.this, exp.Func) else _kind(node.this)
        return [CompileError(f"table function {name}() is not allowed "
                             "(read tables of raw, tags or segments.members)", where)]
    name = node.name
    schema = node.db.lower() if node.db else ""
    if node.catalog:
        return [CompileError(f"'{node.sql()}': name tables as schema.table "
                             "(raw.*, tags.*, segments.members)", where)]
    if not schema:
        if name.lower() in ctes:
            return []
        return [CompileError(f"table '{name}' is not allowed (read raw.*, tags.* or "
                             "segments.members, or a CTE of this query)", where)]
    if schema not in ALLOWED_SCHEMAS:
        return [CompileError(f"table '{schema}.{name}' is outside the allowed schemas "
                             "(raw.*, tags.*, segments.members)", where)]
    tables = ALLOWED_SCHEMAS[schema]
    if tables is not None and name.lower() not in tables:
        return [CompileError(f"table '{schema}.{name}' is not allowed (of {schema} only "
                             f"{', '.join(sorted(tables))})", where)]
    return []


def _check_output(query: exp.Query, path: Path | None, source: str) -> None:
    """Every branch of the outer query yields exactly one column named customer_id."""
    branches: list[exp.Select] = []

    def collect(node: exp.Expression) -> None:
        if isinstance(node, exp.SetOperation):
            collect(node.this)
            collect(node.expression)
        elif isinstance(node, exp.Subquery):
            collect(node.this)
        elif isinstance(node, exp.Select):
            branches.append(node)

    collect(query)
    for i, select in enumerate(branches):
        columns = select.expressions
        where = _loc(path, source, select)
        if len(columns) != 1:
            raise CompileError(f"the query must return exactly one column, customer_id; "
                               f"it returns {len(columns)}", _loc(path, source, columns[1])
                               if len(columns) > 1 else where)
        column = columns[0]
        if isinstance(column, exp.Star) or (isinstance(column, exp.Column)
                                            and isinstance(column.this, exp.Star)):
            raise CompileError("SELECT * is not allowed; select customer_id",
                               _loc(path, source, column))
        if i == 0 and column.alias_or_name.lower() != "customer_id":
            raise CompileError(f"the output column must be named customer_id, not "
                               f"'{column.alias_or_name}' (add AS customer_id)",
                               _loc(path, source, column))


def _func_name(node: exp.Func) -> str:
    return node.name if isinstance(node, exp.Anonymous) else node.sql_name().lower()


def _kind(node: exp.Expression) -> str:
    if isinstance(node, exp.Command):
        return f"{str(node.this).upper()} statement"
    return node.key.upper()


def _short(node: exp.Expression) -> str:
    text = node.sql(dialect="duckdb")
    return text if len(text) <= 60 else text[:57] + "..."


def tables_read(query: exp.Expression) -> list[str]:
    """``schema.table`` names a (gated) query reads, sorted; CTE names excluded."""
    names = {f"{t.db}.{t.name}".lower() for t in query.find_all(exp.Table) if t.db}
    return sorted(names)
