"""Rule segments (标签圈选): a boolean expression over tag columns, checked and compiled.

A rule such as ``credit_granted AND NOT drawn AND registered_days >= 30`` is parsed by
sqlglot, restricted to an allow-list of node types (AND/OR/NOT, comparisons, IN,
BETWEEN, IS [NOT] NULL, literals, tag columns), type-checked against the tags' value
types, and compiled to ``SELECT customer_id FROM tags.customer_tags WHERE as_of =
$as_of AND (<rule>)``. Errors point at the file, line and column of the bad token.
Pure: no DuckDB, no Dagster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError as SqlglotParseError
from sqlglot.errors import TokenError

from kequn.errors import (
    CompileError,
    KequnError,
    Location,
    ParseError,
    ValidationError,
    did_you_mean,
    location_at,
    raise_collected,
)

AS_OF = "as_of"
WIDE_TABLE = ("tags", "customer_tags")

_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)
_NUMERIC = {"integer", "decimal"}
_ALLOWED = (exp.And, exp.Or, exp.Not, exp.Paren, *_COMPARISONS, exp.In, exp.Between, exp.Is,
            exp.Null, exp.Boolean, exp.Literal, exp.Column, exp.Identifier, exp.Neg, exp.Cast,
            exp.DataType)


@dataclass(frozen=True)
class CompiledRule:
    """A checked rule: its condition, the tags it reads and the full member query."""

    condition: exp.Expression
    tags: list[str]
    query: exp.Select


class _Ctx:
    def __init__(self, path: Path | None, source: str, offset: int):
        self.path, self.source, self.offset = path, source, offset

    def loc(self, node: exp.Expression) -> Location:
        start = _start_of(node)
        return location_at(self.path, self.source, self.offset + (start or 0))


def _start_of(node: exp.Expression) -> int | None:
    """The smallest source offset recorded on ``node`` or its descendants."""
    starts = [n.meta["start"] for n in node.walk() if "start" in n.meta]
    return min(starts) if starts else None


def parse_rule(text: str, path: Path | None = None, source: str | None = None,
               offset: int = 0) -> exp.Expression:
    """Parse rule text into a sqlglot expression, errors located in ``source``.

    >>> parse_rule("a AND NOT b").sql()
    'a AND NOT b'
    """
    source = source if source is not None else text
    try:
        nodes = [n for n in sqlglot.parse(text, read="duckdb")
                 if n is not None and not isinstance(n, exp.Semicolon)]
    except (SqlglotParseError, TokenError) as exc:
        detail = exc.errors[0] if isinstance(exc, SqlglotParseError) and exc.errors else {}
        line, col = detail.get("line"), detail.get("col")
        rel = _offset_of(text, line, col) if line else 0
        message = detail.get("description") or str(exc).splitlines()[0]
        raise ParseError(f"cannot parse the rule: {message}",
                         location_at(path, source, offset + rel)) from exc
    if len(nodes) != 1:
        message = "a rule is exactly one condition (no ';')" if nodes else "the rule is empty"
        raise ParseError(message,
                         location_at(path, source, offset))
    return nodes[0]


def _offset_of(text: str, line: int, col: int) -> int:
    lines = text.splitlines(keepends=True)
    return sum(len(x) for x in lines[: line - 1]) + max(col - 1, 0)


def compile_rule(
    text: str,
    tag_types: Mapping[str, str] | None,
    *,
    path: Path | None = None,
    source: str | None = None,
    offset: int = 0,
) -> CompiledRule:
    """Check and compile a rule.

    ``tag_types`` maps each known tag to its value type (boolean, integer, decimal,
    string, date); None skips name and type checks (no tag definitions available).
    Every problem is collected and raised together, each located in ``source``.

    >>> compile_rule("granted AND days >= 30", {"granted": "boolean", "days": "integer"}).tags
    ['granted', 'days']
    """
    source = source if source is not None else text
    ctx = _Ctx(path, source, offset)
    node = parse_rule(text, path, source, offset)
    errors: list[KequnError] = []
    for sub in _walk_allowed(node):
        if not isinstance(sub, _ALLOWED):
            errors.append(CompileError(
                f"'{sub.sql(dialect='duckdb')}' is not allowed in a rule (use tag names, "
                "literals, AND/OR/NOT, comparisons, IN, BETWEEN, IS [NOT] NULL)", ctx.loc(sub)))
        elif isinstance(sub, exp.Column) and sub.table:
            errors.append(CompileError(f"write the tag name alone, not '{sub.sql()}'",
                                       ctx.loc(sub)))
        elif isinstance(sub, exp.Cast) and not _is_date_literal(sub):
            errors.append(CompileError(f"'{sub.sql()}' is not allowed in a rule (only DATE "
                                       "'YYYY-MM-DD' literals)", ctx.loc(sub)))
    tags: list[str] = []
    for column in node.find_all(exp.Column, bfs=False):
        if column.name not in tags:
            tags.append(column.name)
    if tag_types is not None:
        for column in node.find_all(exp.Column):
            if column.name not in tag_types:
                errors.append(ValidationError(f"unknown tag '{column.name}'", ctx.loc(column),
                                              hint=did_you_mean(column.name, tag_types)))
    raise_collected(errors)
    if tag_types is not None:
        _TypeChecker(tag_types, ctx, errors).boolean(node)
        raise_collected(errors)
    condition = node.copy()
    for column in condition.find_all(exp.Column):
        column.this.set("quoted", True)
    query = (
        exp.select("customer_id")
        .from_(exp.table_(WIDE_TABLE[1], db=WIDE_TABLE[0]))
        .where(exp.and_(
            exp.EQ(this=exp.column("as_of"), expression=exp.Placeholder(this=AS_OF)),
            exp.paren(condition, copy=False),
        ))
    )
    return CompiledRule(condition=condition, tags=tags, query=query)


def _walk_allowed(node: exp.Expression):
    """Pre-order walk that does not descend below a node outside the allow-list."""
    yield node
    if isinstance(node, _ALLOWED):
        for child in node.iter_expressions():
            yield from _walk_allowed(child)


def _is_date_literal(node: exp.Cast) -> bool:
    return (node.to.is_type(exp.DataType.Type.DATE) and isinstance(node.this, exp.Literal)
            and node.this.is_string)


class _TypeChecker:
    """Infers each sub-expression's type; appends located errors on mismatches."""

    def __init__(self, types: Mapping[str, str], ctx: _Ctx, errors: list[KequnError]):
        self.types, self.ctx, self.errors = types, ctx, errors

    def fail(self, node: exp.Expression, message: str) -> None:
        self.errors.append(ValidationError(message, self.ctx.loc(node)))

    def boolean(self, node: exp.Expression) -> None:
        """``node`` must be a condition (a boolean value)."""
        kind = self.infer(node)
        if kind not in ("boolean", "null", None):
            self.fail(node, f"'{node.sql()}' is {_article(kind)} {kind} value, not a condition "
                            f"(compare it, e.g. {node.sql()} > 0)")

    def infer(self, node: exp.Expression) -> str | None:
        if isinstance(node, exp.Paren):
            return self.infer(node.this)
        if isinstance(node, (exp.And, exp.Or)):
            self.boolean(node.this)
            self.boolean(node.expression)
            return "boolean"
        if isinstance(node, exp.Not):
            self.boolean(node.this)
            return "boolean"
        if isinstance(node, exp.Column):
            return self.types.get(node.name)
        if isinstance(node, exp.Boolean):
            return "boolean"
        if isinstance(node, exp.Null):
            return "null"
        if isinstance(node, exp.Neg):
            inner = self.infer(node.this)
            if inner not in _NUMERIC and inner is not None:
                self.fail(node, f"cannot negate the {inner} value '{node.this.sql()}'")
            return inner
        if isinstance(node, exp.Literal):
            if not node.is_string:
                return "decimal" if any(c in node.this for c in ".eE") else "integer"
            return "string"
        if isinstance(node, exp.Cast):
            return "date"
        if isinstance(node, _COMPARISONS):
            self.compatible(node, node.this, [node.expression])
            return "boolean"
        if isinstance(node, exp.In):
            self.compatible(node, node.this, node.expressions)
            return "boolean"
        if isinstance(node, exp.Between):
            self.compatible(node, node.this, [node.args["low"], node.args["high"]])
            return "boolean"
        if isinstance(node, exp.Is):
            self.infer(node.this)
            return "boolean"
        return None

    def compatible(self, parent: exp.Expression, left: exp.Expression,
                   others: list[exp.Expression]) -> None:
        lt = self.infer(left)
        for other in others:
            rt = self.infer(other)
            if not _compatible(lt, rt, left, other):
                column = left if isinstance(left, exp.Column) else other
                self.fail(other if isinstance(left, exp.Column) else parent,
                          f"cannot compare {_describe(left, lt)} with {_describe(other, rt)}"
                          + (f" (tag '{column.name}' is {self.types.get(column.name)})"
                             if isinstance(column, exp.Column) else ""))


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _describe(node: exp.Expression, kind: str | None) -> str:
    return f"'{node.sql()}' ({kind or 'unknown'})"


def _compatible(a: str | None, b: str | None, left: exp.Expression,
                right: exp.Expression) -> bool:
    if a is None or b is None or "null" in (a, b):
        return True
    if a == b or (a in _NUMERIC and b in _NUMERIC):
        return True
    for kind, other, node in ((a, b, right), (b, a, left)):
        # a date tag compares with 'YYYY-MM-DD' strings (DuckDB casts them)
        if kind == "date" and other == "string" and isinstance(node, exp.Literal):
            return _is_iso_date(node.this)
    return False


def _is_iso_date(text: str) -> bool:
    from datetime import date

    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def leaf_conditions(condition: exp.Expression) -> list[exp.Expression]:
    """The rule's atomic conditions (what ``explain`` evaluates one by one), in order."""
    if isinstance(condition, exp.Paren):
        return leaf_conditions(condition.this)
    if isinstance(condition, (exp.And, exp.Or)):
        return leaf_conditions(condition.this) + leaf_conditions(condition.expression)
    if isinstance(condition, exp.Not):
        inner = condition.this.unnest() if isinstance(condition.this, exp.Paren) else condition.this
        if isinstance(inner, (exp.And, exp.Or)):
            return leaf_conditions(inner)
    return [condition]
