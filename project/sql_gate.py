"""The gate on analysts' SQL segments: only one read-only SELECT over allowed tables.

The SQL of a ``kind sql`` segment is untrusted. :func:`gate` parses it with sqlglot and
accepts only: exactly one statement (a trailing comment is fine); a query (SELECT / set
operation) built from an allow-list of node types, walked over the whole tree so nothing
hides in a CTE or subquery; tables only from ``raw.*``, ``tags.*`` and
``segments.members``, or a CTE *visible where the name stands* (each reference is
resolved in its own scope, so a CTE name never lets a system view through elsewhere); no
table functions; functions by class: sqlglot's typed scalar/aggregate/window functions
are pure and allowed, except those that read files or URLs, write, configure or reveal
(:data:`DENIED_FUNCTION_PREFIXES`); untyped names only from :data:`PURE_FUNCTIONS`;
exactly one output column named ``customer_id``. The only parameter is ``$as_of``.

Limits (checked on the tokens before any tree is built, so hostile nesting cannot blow
the stack): :data:`MAX_SQL_CHARS`, :data:`MAX_TOKENS`, :data:`MAX_NESTING` and, on the
tree, :data:`MAX_DEPTH` (AND/OR chains count once). Every refusal is one located
message; sqlglot's internals and warnings never reach the user.

The gate never executes anything; the query it returns runs later in a restricted,
read-only process (:mod:`segments.sandbox`), regenerated from the checked tree.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError as SqlglotParseError
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from kequn.errors import (
    CompileError,
    KequnError,
    Location,
    ParseError,
    did_you_mean,
    location_at,
    raise_collected,
)
from kequn.sqlsource import clean_description, node_location, parse_error_location

AS_OF = "as_of"
ALLOWED_SCHEMAS = {"raw": None, "tags": None, "segments": {"members"}}
"""schema -> allowed tables (None: every table of the schema)."""

MAX_SQL_CHARS = 1_000_000
"""Longest SQL text the gate reads."""
MAX_TOKENS = 250_000
"""Most tokens (a 50,000-value IN list is about 100,000)."""
MAX_NESTING = 32
"""Deepest nesting of parentheses, brackets and CASE ... END."""
MAX_DEPTH = 150
"""Deepest expression tree (a chain of AND or OR counts as one level)."""

ALLOWED_NODES: tuple[type[exp.Expression], ...] = (
    # query structure
    exp.Select, exp.Union, exp.Intersect, exp.Except, exp.Subquery, exp.From, exp.Join,
    exp.Where, exp.Group, exp.Having, exp.Qualify, exp.Order, exp.Ordered, exp.Limit,
    exp.Offset, exp.With, exp.CTE, exp.TableAlias, exp.Table, exp.Column, exp.Identifier,
    exp.Star, exp.Alias, exp.Distinct, exp.Tuple, exp.Window, exp.WindowSpec, exp.Values,
    # values and operators
    exp.Literal, exp.Boolean, exp.Null, exp.Paren, exp.And, exp.Or, exp.Not, exp.EQ, exp.NEQ,
    exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Is, exp.In, exp.Between, exp.Like, exp.ILike,
    exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.Neg, exp.Case,
    exp.DataType, exp.DataTypeParam, exp.Exists, exp.Any, exp.All, exp.Interval, exp.Var,
    exp.Placeholder, exp.DPipe, exp.NullSafeEQ, exp.NullSafeNEQ, exp.SimilarTo, exp.Glob,
    exp.Escape, exp.BitwiseAnd, exp.BitwiseOr, exp.BitwiseXor, exp.BitwiseNot,
    exp.BitwiseLeftShift, exp.BitwiseRightShift, exp.Lambda, exp.Bracket, exp.Slice,
    exp.Kwarg, exp.PropertyEQ, exp.IgnoreNulls, exp.RespectNulls, exp.WithinGroup,
    exp.AtTimeZone, exp.Dot, exp.JSONPath, exp.JSONPathPart, exp.Unnest,
)
DENIED_FUNCTION_PREFIXES = (
    "Read", "ToFile", "Secret", "Current", "Session", "NextValueFor", "AI", "ML", "Predict",
    "Generate", "Vector", "FeaturesAtTime", "Apply", "GapFill", "JSONTable", "XMLTable",
    "OpenJSON",
)
"""sqlglot function classes (by class-name prefix) that read, write, configure, reveal or
call out; everything else sqlglot types as a function is a pure scalar/aggregate."""
_ALLOWED_DESPITE_PREFIX = frozenset({
    "CurrentDate", "CurrentTimestamp", "CurrentTime", "CurrentDatetime", "GenerateSeries",
    "GenerateDateArray", "GenerateTimestampArray",
})
_PURE = """
age epoch_us epoch_ns date_part datepart weekday yearweek isoyear dayofmonth week
weekofyear nanosecond microsecond millisecond century decade millennium era julian
to_months to_years to_weeks to_hours to_minutes to_seconds to_milliseconds now datesub
list_has_all strlen length_grapheme prefix suffix hash cardinality bit_count arbitrary
histogram fsum sum_no_overflow product favg kahan_sum entropy printf list_reduce
list_aggregate list_sum list_count list_position list_slice list_has list_indexof
list_element list_extract list_unique list_avg list_any_value list_bool_or list_bool_and
gcd lcm even isodow isfinite isinf isnan nullif ifnull iff least_common_multiple
greatest_common_divisor array_has_all array_length array_position list_apply
"""
PURE_FUNCTIONS = frozenset(_PURE.split())
"""DuckDB functions sqlglot does not type (parsed as anonymous) that are pure."""
DENIED_FUNCTION_NAMES = (
    "read_", "duckdb_", "pragma", "parquet_", "sniff_", "glob", "current_", "getenv", "query",
    "set", "version", "iceberg_", "delta_", "sqlite_", "postgres_", "mysql_", "http", "load_",
    "install_", "which_secret", "json_execute", "checkpoint", "force_checkpoint", "enum_",
    "nextval", "currval", "txid_", "pg_", "has_", "in_search_path", "col_description",
    "obj_description", "shobj_description", "format_pg_type", "user", "session_", "import",
    "export", "copy", "system", "memory", "temp_", "file", "list_files", "replacement",
)
"""Untyped DuckDB function names (prefixes) that read, write, configure or reveal."""

_WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter,
           exp.Copy, exp.Attach, exp.Detach, exp.Pragma, exp.Set, exp.Command, exp.Use,
           exp.Install, exp.Export, exp.TruncateTable)
_OPEN = {TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE, TokenType.CASE}
_CLOSE = {TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE, TokenType.END}
_DUCKDB = Dialect.get_or_raise("duckdb")


def _loc(path: Path | None, source: str, node: exp.Expression,
         tokens: list[Token] | None = None) -> Location:
    """Where ``node`` starts; nodes sqlglot kept no position for (``current_user``) are
    found among the tokens by their first word."""
    if tokens and not any(sub.meta.get("start") is not None for sub in node.walk()
                          if sub.meta):
        word = (node.name if isinstance(node, exp.Anonymous) else
                node.sql_name() if isinstance(node, exp.Func) else "").lower()
        for token in tokens:
            if word and token.text.lower() == word:
                return location_at(path, source, token.start)
    return node_location(node, path, source)


@contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    """sqlglot warns through ``logging``; keep its warnings off the user's terminal."""
    logger = logging.getLogger("sqlglot")
    level, propagate = logger.level, logger.propagate
    handler = logging.NullHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.ERROR)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


_REQUIRED = re.compile(r"Required keyword: '(\w+)' missing for <class '[\w.]*?(\w+)'>")


def _describe(description: str) -> str:
    """A sqlglot parse error description without sqlglot's class names or token reprs."""
    match = _REQUIRED.search(description)
    if match:
        what = match.group(2)
        word = {"And": "AND", "Or": "OR", "EQ": "=", "NEQ": "<>", "Not": "NOT",
                "Add": "+", "Sub": "-", "Mul": "*", "Div": "/"}.get(what, what.upper())
        return f"{word} is incomplete: something is missing after it"
    text = clean_description(description)
    return re.sub(r"<class '[\w.]*?(\w+)'>", lambda m: m.group(1).upper(), text)


def _tokens(sql: str, path: Path | None, source: str) -> list[Token]:
    """The SQL's tokens, after the cheap limits (length, count, nesting)."""
    if len(sql) > MAX_SQL_CHARS:
        raise CompileError(f"the SQL is {len(sql):,} characters long, more than the "
                           f"{MAX_SQL_CHARS:,} allowed", location_at(path, source, 0))
    try:
        with _quiet_sqlglot():
            tokens = _DUCKDB.tokenize(sql)
    except TokenError as exc:
        raise ParseError(f"cannot read the SQL: {_describe(str(exc).splitlines()[0])}",
                         location_at(path, source, 0)) from None
    if len(tokens) > MAX_TOKENS:
        raise CompileError(f"the SQL has {len(tokens):,} tokens, more than the "
                           f"{MAX_TOKENS:,} allowed (put long lists of customers in a file "
                           "segment)", location_at(path, source, tokens[MAX_TOKENS].start))
    depth = 0
    for token in tokens:
        if token.token_type in _OPEN:
            depth += 1
            if depth > MAX_NESTING:
                raise CompileError(f"the SQL nests deeper than {MAX_NESTING} levels of "
                                   "parentheses, brackets or CASE (simplify it, or use a CTE)",
                                   location_at(path, source, token.start))
        elif token.token_type in _CLOSE:
            depth = max(depth - 1, 0)
    return tokens


def _parse(sql: str, path: Path | None, source: str) -> list[exp.Expression]:
    try:
        with _quiet_sqlglot():
            statements = sqlglot.parse(sql, read="duckdb")
    except SqlglotParseError as exc:
        detail = exc.errors[0] if exc.errors else {}
        message = _describe(detail.get("description") or str(exc).splitlines()[0])
        raise ParseError(f"cannot parse the SQL: {message}",
                         parse_error_location(detail, path, source)) from None
    except TokenError as exc:
        raise ParseError(f"cannot read the SQL: {_describe(str(exc).splitlines()[0])}",
                         location_at(path, source, _first_text(sql))) from None
    except RecursionError:
        raise CompileError(f"the SQL is nested too deeply to check (at most {MAX_NESTING} "
                           "levels)", location_at(path, source, _first_text(sql))) from None
    return [s for s in statements if s is not None and not isinstance(s, exp.Semicolon)]


def _first_text(sql: str) -> int:
    """Offset of the first character that is not blank (0 for blank text)."""
    match = re.search(r"\S", sql)
    return match.start() if match else 0


def gate(sql: str, path: Path | None = None, source: str | None = None) -> exp.Query:
    """Check an analyst's SQL and return the single query it holds.

    ``sql`` keeps its position in ``source`` (a definition body keeps the header
    blanked), so every error names the file's line and column. Raises KequnErrors
    listing every violation (one located message each, never a RecursionError);
    never executes anything.

    >>> gate("SELECT customer_id FROM raw.customers -- the lot").sql()
    'SELECT customer_id FROM raw.customers /* the lot */'
    """
    source = source if source is not None else sql
    tokens = _tokens(sql, path, source)
    statements = _parse(sql, path, source)
    if not statements:
        what = "holds only comments" if tokens or sql.strip() else "is empty"
        raise ParseError(f"the SQL {what}; write one SELECT returning customer_id",
                         location_at(path, source, _first_text(sql)))
    starts = _statement_starts(tokens)
    if len(statements) > 1:
        where = (location_at(path, source, starts[1]) if len(starts) > 1
                 else _loc(path, source, statements[1]))
        raise CompileError(f"exactly one statement is allowed, found {len(statements)} "
                           f"(a second one starts here: {_kind(statements[1])})", where)
    query = statements[0]
    if not isinstance(query, exp.Query) or isinstance(query, _WRITES):
        where = location_at(path, source, starts[0]) if starts else _loc(path, source, query)
        raise CompileError(f"only a SELECT is allowed, not {_statement_kind(query, tokens)}",
                           where)
    try:
        _check_depth(query, path, source)
        errors = _violations(query, tokens, path, source)
        raise_collected(errors)
        _check_output(query, path, source)
    except RecursionError:
        raise CompileError(f"the SQL is nested too deeply to check (at most {MAX_DEPTH} "
                           "levels)", location_at(path, source, _first_text(sql))) from None
    return query


def _violations(query: exp.Query, tokens: list[Token], path: Path | None,
                source: str) -> list[KequnError]:
    errors: list[KequnError] = []
    for node in _walk(query):
        if isinstance(node, _WRITES):
            errors.append(CompileError(f"{_kind(node)} is not allowed (queries only)",
                                       _loc(path, source, node)))
        elif isinstance(node, exp.Table):
            message = _check_table(node)
            if message:
                errors.append(CompileError(message, _loc(path, source, node)))
        elif isinstance(node, exp.Placeholder):
            if node.name != AS_OF:
                errors.append(CompileError(f"unknown parameter '${node.name}' (only $as_of, "
                                           "the day being built)",
                                           _placeholder_location(node, tokens, path, source)))
        elif isinstance(node, exp.Func) and not isinstance(node, ALLOWED_NODES):
            message = _check_function(node)
            if message:
                errors.append(CompileError(message, _loc(path, source, node, tokens)))
        elif not isinstance(node, ALLOWED_NODES):
            errors.append(CompileError(f"{_kind(node)} '{_short(node)}' is not allowed in a "
                                       "segment query", _loc(path, source, node)))
    return errors


def _check_function(node: exp.Func) -> str:
    """'' when the function is allowed, else why not."""
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        if name in PURE_FUNCTIONS:
            return ""
        if name.startswith(DENIED_FUNCTION_NAMES):
            return (f"function {node.name}() is not allowed in a segment query (it reads, "
                    "writes, configures or reveals something outside the query)")
        hint = did_you_mean(name, _known_function_names())
        return (f"function {node.name}() is not allowed in a segment query (not a known "
                f"pure function{'; ' + hint if hint else ''})")
    cls = type(node).__name__
    if cls not in _ALLOWED_DESPITE_PREFIX and cls.startswith(DENIED_FUNCTION_PREFIXES):
        return (f"function {_func_name(node)}() is not allowed in a segment query (it reads, "
                "writes, configures or reveals something outside the query)")
    if type(node).__module__.split(".")[0] != "sqlglot":
        return f"function {_func_name(node)}() is not allowed in a segment query"
    return ""


_KNOWN: list[str] = []


def _known_function_names() -> list[str]:
    """Names a did-you-mean may suggest: the pure anonymous ones and DuckDB's typed ones."""
    if not _KNOWN:
        names = set(PURE_FUNCTIONS)
        for name, builder in _DUCKDB.parser_class.FUNCTIONS.items():
            cls = builder if isinstance(builder, type) else None
            cls_name = cls.__name__ if cls else ""
            if cls_name.startswith(DENIED_FUNCTION_PREFIXES) and \
                    cls_name not in _ALLOWED_DESPITE_PREFIX:
                continue
            if not name.lower().startswith(("read_", "duckdb_", "pragma")):
                names.add(name.lower())
        _KNOWN.extend(sorted(names))
    return _KNOWN


def _placeholder_location(node: exp.Placeholder, tokens: list[Token], path: Path | None,
                          source: str) -> Location:
    """Placeholders carry no position in sqlglot: find ``$name`` among the tokens."""
    name = node.name.lower()
    for before, token in pairwise(tokens):
        if (before.token_type == TokenType.PARAMETER and before.end + 1 == token.start
                and token.text.lower() == name):
            return location_at(path, source, before.start)
    return _loc(path, source, node)


def _check_depth(query: exp.Expression, path: Path | None, source: str) -> None:
    """Refuse trees deeper than MAX_DEPTH (iteratively; AND/OR chains count once)."""
    stack: list[tuple[exp.Expression, int]] = [(query, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise CompileError(f"the SQL is nested deeper than {MAX_DEPTH} levels of "
                               "expressions (simplify it, or use IN (...) for long lists)",
                               _loc(path, source, node))
        for child in node.iter_expressions():
            same_chain = isinstance(node, exp.Connector) and type(child) is type(node)
            stack.append((child, depth if same_chain else depth + 1))


def _statement_starts(tokens: list[Token]) -> list[int]:
    """Source offsets where each statement's first token stands (comments skipped)."""
    starts: list[int] = []
    expect = True
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            expect = True
        elif expect:
            starts.append(token.start)
            expect = False
    return starts


def _walk(root: exp.Expression) -> Iterator[exp.Expression]:
    """Pre-order walk (iterative) that stops below nodes already rejected (one error each)."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, exp.Table):
            children = ([c for c in node.iter_expressions() if c is not node.this]
                        if isinstance(node.this, exp.Identifier) else [])
        elif isinstance(node, ALLOWED_NODES) or (isinstance(node, exp.Func)
                                                 and not _check_function(node)):
            children = list(node.iter_expressions())
        else:
            children = []
        stack.extend(reversed(children))


def _cte_in_scope(table: exp.Table) -> bool:
    """Whether an unqualified table name is a CTE visible where it stands.

    Walks up from the reference: a WITH of an enclosing query makes all its CTEs visible
    to the query's body; inside the n-th CTE only the CTEs before it are (and itself under
    WITH RECURSIVE). A CTE of a sibling or nested query is not visible, so the name then
    means a real table and must pass the allow-list.
    """
    name = table.name.lower()
    child: exp.Expression = table
    node = table.parent
    while node is not None:
        if isinstance(node, exp.With):
            ctes = node.expressions
            index = next((i for i, c in enumerate(ctes) if c is child), len(ctes))
            visible = ctes[: index + 1] if node.args.get("recursive") else ctes[:index]
            if any(c.alias_or_name.lower() == name for c in visible):
                return True
        elif isinstance(node, exp.Query):
            with_ = node.args.get("with_")
            if with_ is not None and child is not with_ and any(
                    c.alias_or_name.lower() == name for c in with_.expressions):
                return True
        child, node = node, node.parent
    return False


def _check_table(node: exp.Table) -> str:
    """'' when the table reference is allowed, else why not."""
    if not isinstance(node.this, exp.Identifier):
        name = _func_name(node.this) if isinstance(node.this, exp.Func) else _kind(node.this)
        return (f"table function {name}() is not allowed "
                "(read tables of raw, tags or segments.members)")
    name = node.name
    schema = node.db.lower() if node.db else ""
    if node.catalog:
        return (f"'{node.sql()}': name tables as schema.table "
                "(raw.*, tags.*, segments.members)")
    if not schema:
        if _cte_in_scope(node):
            return ""
        return (f"table '{name}' is not allowed (read raw.*, tags.* or "
                "segments.members, or a CTE of this query visible here)")
    if schema not in ALLOWED_SCHEMAS:
        return (f"table '{schema}.{name}' is outside the allowed schemas "
                "(raw.*, tags.*, segments.members)")
    tables = ALLOWED_SCHEMAS[schema]
    if tables is not None and name.lower() not in tables:
        return (f"table '{schema}.{name}' is not allowed (of {schema} only "
                f"{', '.join(sorted(tables))})")
    return ""


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


def _statement_kind(node: exp.Expression, tokens: list[Token]) -> str:
    """What a non-query statement is, in the user's words (never a sqlglot class name)."""
    if isinstance(node, (exp.Command, *_WRITES)):
        return _kind(node)
    first = next((t.text for t in tokens), "")
    return f"'{first}' (start the query with SELECT or WITH)"


def _kind(node: exp.Expression) -> str:
    if isinstance(node, exp.Command):
        return f"{str(node.this).upper()} statement"
    return node.key.upper()


def _short(node: exp.Expression) -> str:
    text = node.sql(dialect="duckdb")
    return text if len(text) <= 60 else text[:57] + "..."


def tables_read(query: exp.Expression) -> list[str]:
    """``schema.table`` names a (gated) query reads, sorted; CTE names excluded."""
    names = {f"{t.db}.{t.name}".lower() for t in query.find_all(exp.Table)
             if t.db and isinstance(t.this, exp.Identifier)}
    return sorted(names)
