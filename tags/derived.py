"""Derived tags: parse an expression over other tags and check its types.

A derived tag is a boolean, numeric, string or date expression over other tag names:
AND/OR/NOT, arithmetic, comparisons, IN, BETWEEN, IS [NOT] NULL, CASE, COALESCE,
GREATEST/LEAST, ABS. Anything else (subqueries, tables, arbitrary functions) is
refused. Types are checked before any SQL runs: ``credit_limit AND drawn`` is an
error located at ``credit_limit``.

>>> from pathlib import Path
>>> node = parse_expression("credit_granted AND NOT drawn", Path("t.sql"))
>>> infer_type(node, {"credit_granted": "boolean", "drawn": "boolean"}, Path("t.sql"), "")
'boolean'
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError as SqlglotParseError
from sqlglot.errors import TokenError

from kequn.errors import Location, ParseError, ValidationError, location_at

NUMERIC = ("integer", "decimal")
NULL = "null"
ALLOWED = (
    "AND, OR, NOT, + - * / %, comparisons, IN (...), BETWEEN, IS [NOT] NULL, CASE, "
    "COALESCE, GREATEST, LEAST, ABS"
)


def parse_expression(text: str, path: Path, source: str | None = None) -> exp.Expression:
    """Parse ``text`` (blank-padded so offsets are file offsets) as one SQL expression.

    Raises :class:`~kequn.errors.ParseError` at the line/col sqlglot reports.
    """
    source = source if source is not None else text
    try:
        node = sqlglot.parse_one(text, read="duckdb", into=exp.Condition)
    except SqlglotParseError as err:
        first = err.errors[0] if err.errors else {}
        desc = clean_description(first.get("description") or str(err))
        raise ParseError(f"expression does not parse: {desc}",
                         parse_error_location(first, path, source)) from err
    except TokenError as err:
        raise ParseError(f"expression does not parse: {err}",
                         location_at(path, source, len(text) - len(text.lstrip()))) from err
    if node is None:
        raise ParseError("the expression is empty", location_at(path, source, 0))
    return node


def parse_error_location(error: dict, path: Path, source: str) -> Location:
    """Where a sqlglot parse error starts (sqlglot reports the end of the bad token).

    >>> parse_error_location({"line": 1, "col": 9, "highlight": "FROM"}, Path("t"), "").col
    6
    """
    line, col = error.get("line") or 1, error.get("col") or 1
    highlight = error.get("highlight") or ""
    if highlight and "\n" not in highlight and col >= len(highlight):
        col = col - len(highlight) + 1
    return Location(path, max(line, 1), max(col, 1), source)


def clean_description(text: str) -> str:
    """A sqlglot parse error description with token reprs shown as their text.

    >>> clean_description("Expected table name but got <Token token_type: TokenType.WHERE, "
    ...                   "text: WHERE, line: 1, col: 5>")
    "Expected table name but got 'WHERE'"
    """
    return re.sub(r"<Token token_type: [^,]*, text: (.*?), line: \d+.*?>", r"'\1'", text)


def node_location(node: exp.Expression, path: Path, source: str) -> Location:
    """Where ``node`` starts in ``source`` (the first token sqlglot kept a position for)."""
    best: int | None = None
    for sub in node.walk():
        start = sub.meta.get("start") if sub.meta else None
        if start is not None and (best is None or start < best):
            best = start
    return location_at(path, source, best if best is not None else 0)


def references(node: exp.Expression) -> list[exp.Column]:
    """Every tag reference (column) in ``node``, in source order."""
    columns = list(node.find_all(exp.Column))
    return sorted(columns, key=lambda c: (c.this.meta or {}).get("start", 0))


def _is_date_literal(node: exp.Expression) -> bool:
    if isinstance(node, exp.Literal) and node.is_string:
        try:
            date.fromisoformat(node.this)
        except ValueError:
            return False
        return True
    return False


class _Checker:
    """Infers the type of each node; raises ValidationError at the first mismatch."""

    def __init__(self, types: dict[str, str], path: Path, source: str):
        self.types = types
        self.path = path
        self.source = source

    def error(self, node: exp.Expression, message: str) -> ValidationError:
        return ValidationError(message, node_location(node, self.path, self.source))

    def describe(self, node: exp.Expression) -> str:
        text = node.sql(dialect="duckdb")
        return text if isinstance(node, exp.Literal) and node.is_string else f"'{text}'"

    def expect(self, node: exp.Expression, wanted: tuple[str, ...], what: str) -> str:
        kind = self.infer(node)
        if kind != NULL and kind not in wanted:
            raise self.error(node, f"{what} needs {' or '.join(wanted)} operands, but "
                                   f"{self.describe(node)} is {kind}")
        return kind

    def unify(self, nodes: list[exp.Expression], what: str) -> str:
        """The common type of ``nodes`` (integer widens to decimal; NULL fits anything)."""
        result = NULL
        for node in nodes:
            kind = self.infer(node)
            if kind == NULL:
                continue
            if result == NULL:
                result = kind
            elif {result, kind} <= set(NUMERIC):
                result = "decimal" if "decimal" in (result, kind) else "integer"
            elif result != kind and not self._date_vs_string(result, kind, node):
                raise self.error(node, f"{what} mixes {result} and {kind}: "
                                       f"{self.describe(node)} is {kind}")
        return result

    def _date_vs_string(self, left: str, right: str, node: exp.Expression) -> bool:
        return {left, right} == {"date", "string"} and _is_date_literal(node)

    def compare(self, left: exp.Expression, others: list[exp.Expression], what: str) -> str:
        base = self.infer(left)
        for other in others:
            kind = self.infer(other)
            if NULL in (base, kind) or base == kind:
                continue
            if {base, kind} <= set(NUMERIC):
                continue
            if base == "date" and kind == "string" and _is_date_literal(other):
                continue
            if kind == "date" and base == "string" and _is_date_literal(left):
                continue
            raise self.error(other, f"{what} compares {base} with {kind}: "
                                    f"{self.describe(other)} is {kind}")
        return "boolean"

    def infer(self, node: exp.Expression) -> str:
        if isinstance(node, exp.Paren):
            return self.infer(node.this)
        if isinstance(node, exp.Column):
            if node.table:
                raise self.error(node, f"refer to tags by name only, not "
                                       f"{self.describe(node)}")
            return self.types.get(node.name.lower(), NULL)
        if isinstance(node, exp.Literal):
            if node.is_string:
                return "string"
            return "integer" if node.this.lstrip("-").isdigit() else "decimal"
        if isinstance(node, exp.Boolean):
            return "boolean"
        if isinstance(node, exp.Null):
            return NULL
        if isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.DATE) \
                and _is_date_literal(node.this):
            return "date"
        if isinstance(node, (exp.And, exp.Or, exp.Xor)):
            name = type(node).__name__.upper()
            self.expect(node.this, ("boolean",), name)
            self.expect(node.expression, ("boolean",), name)
            return "boolean"
        if isinstance(node, exp.Not):
            self.expect(node.this, ("boolean",), "NOT")
            return "boolean"
        if isinstance(node, exp.Neg):
            return self.expect(node.this, NUMERIC, "'-'")
        if isinstance(node, (exp.Add, exp.Sub)):
            return self._add_sub(node)
        if isinstance(node, (exp.Mul, exp.Div, exp.Mod)):
            symbol = {exp.Mul: "*", exp.Div: "/", exp.Mod: "%"}[type(node)]
            left = self.expect(node.this, NUMERIC, f"'{symbol}'")
            right = self.expect(node.expression, NUMERIC, f"'{symbol}'")
            if isinstance(node, exp.Div) or "decimal" in (left, right):
                return "decimal"
            return "integer" if "integer" in (left, right) else NULL
        if isinstance(node, (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE,
                             exp.NullSafeEQ, exp.NullSafeNEQ)):
            return self.compare(node.this, [node.expression], "comparison")
        if isinstance(node, exp.In):
            if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
                raise self.error(node, "IN takes a list of values here, not a subquery")
            return self.compare(node.this, list(node.expressions), "IN")
        if isinstance(node, exp.Between):
            return self.compare(node.this, [node.args["low"], node.args["high"]], "BETWEEN")
        if isinstance(node, exp.Is):
            if not isinstance(node.expression, (exp.Null, exp.Boolean)):
                raise self.error(node, "IS takes NULL, TRUE or FALSE")
            if isinstance(node.expression, exp.Boolean):
                self.expect(node.this, ("boolean",), "IS TRUE/FALSE")
            else:
                self.infer(node.this)
            return "boolean"
        if isinstance(node, exp.Case):
            return self._case(node)
        if isinstance(node, exp.If):
            self.expect(node.this, ("boolean",), "IF condition")
            return self.unify([node.args["true"], *([node.args["false"]]
                               if node.args.get("false") else [])], "IF")
        if isinstance(node, (exp.Coalesce, exp.Greatest, exp.Least)):
            name = type(node).__name__.upper()
            kind = self.unify([node.this, *node.expressions], name)
            if not isinstance(node, exp.Coalesce) and kind not in (*NUMERIC, "date", NULL):
                raise self.error(node, f"{name} needs numbers or dates, not {kind}")
            return kind
        if isinstance(node, exp.Abs):
            return self.expect(node.this, NUMERIC, "ABS")
        raise self.error(node, f"{self.describe(node)} is not allowed in a derived tag "
                               f"expression (allowed: {ALLOWED})")

    def _add_sub(self, node: exp.Add | exp.Sub) -> str:
        symbol = "+" if isinstance(node, exp.Add) else "-"
        left, right = self.infer(node.this), self.infer(node.expression)
        if left == "date" and right in ("integer", NULL):
            return "date"
        if isinstance(node, exp.Sub) and left == right == "date":
            return "integer"
        if isinstance(node, exp.Add) and right == "date" and left in ("integer", NULL):
            return "date"
        self.expect(node.this, NUMERIC, f"'{symbol}'")
        self.expect(node.expression, NUMERIC, f"'{symbol}'")
        if "decimal" in (left, right):
            return "decimal"
        return "integer" if "integer" in (left, right) else NULL

    def _case(self, node: exp.Case) -> str:
        subject = node.this
        results: list[exp.Expression] = []
        for branch in node.args.get("ifs") or []:
            if subject is not None:
                self.compare(subject, [branch.this], "CASE")
            else:
                self.expect(branch.this, ("boolean",), "WHEN")
            results.append(branch.args["true"])
        if node.args.get("default") is not None:
            results.append(node.args["default"])
        return self.unify(results, "CASE")


def infer_type(node: exp.Expression, types: dict[str, str], path: Path, source: str) -> str:
    """The value type ``node`` produces given each tag's type; 'null' for a bare NULL.

    Unknown names infer as 'null' (the loader reports them separately, with a hint).
    Raises :class:`~kequn.errors.ValidationError` at the first operand of the wrong type.
    """
    return _Checker(types, path, source).infer(node)


def fits(inferred: str, declared: str) -> bool:
    """Whether an expression of type ``inferred`` may fill a tag declared ``declared``."""
    return inferred in (NULL, declared) or (inferred == "integer" and declared == "decimal")
