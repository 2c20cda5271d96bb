"""The expression language over tags: one parser and one type checker.

Derived tags (``credit_granted AND NOT drawn``) and segment rules
(``granted_not_drawn AND registered_days >= 30``) are written in the same language: tag
names, literals (numbers, strings, ``DATE 'YYYY-MM-DD'``, TRUE/FALSE/NULL), AND/OR/NOT,
arithmetic, comparisons, IN (...), BETWEEN, IS [NOT] NULL, CASE, COALESCE, GREATEST,
LEAST and ABS. Anything else (subqueries, tables, other functions) is refused. Types are
checked before any SQL runs, and every error points at the offending operand's
``file:line:col``: ``credit_limit AND drawn`` is an error located at ``credit_limit``.

>>> from pathlib import Path
>>> node = parse_expression("credit_granted AND NOT drawn", Path("t.sql"))
>>> infer_type(node, {"credit_granted": "boolean", "drawn": "boolean"}, Path("t.sql"),
...            "credit_granted AND NOT drawn")
'boolean'
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError as SqlglotParseError
from sqlglot.errors import TokenError
from sqlglot.tokens import Tokenizer, TokenType

from kequn.errors import KequnError, ParseError, ValidationError, did_you_mean, location_at
from kequn.header import DefinitionFile, HeaderField
from kequn.sqlsource import (
    clean_description,
    node_location,
    padded,
    padded_value,
    parse_error_location,
)

NUMERIC = ("integer", "decimal")
NULL = "null"
VALUE_TYPES = ("boolean", "integer", "decimal", "string", "date")
"""The value types of tags and of the expressions over them."""
ALLOWED = (
    "AND, OR, NOT, + - * / %, comparisons, IN (...), BETWEEN, IS [NOT] NULL, CASE, "
    "COALESCE, GREATEST, LEAST, ABS"
)


def parse_field(definition: DefinitionFile, item: HeaderField) -> exp.Expression:
    """The expression written as a header value (``rule 'drawn AND NOT overdue'``)."""
    end = item.end - 1 if item.quoted else item.end
    return parse_expression(definition.text, definition.path, item.text_offset, end,
                            quoted=item.quoted)


def parse_expression(source: str, path: Path | None, start: int = 0, end: int | None = None,
                     *, quoted: bool = False) -> exp.Expression:
    """Parse ``source[start:end]`` as one expression, positions kept as file positions.

    ``quoted``: the text is the inside of a quoted header value (doubled quotes escaped).
    Raises :class:`~kequn.errors.ParseError` located where sqlglot stopped; a second
    statement (``;``) or an empty text is an error too.
    """
    text = padded_value(source, start, len(source) if end is None else end) if quoted \
        else padded(source, start, end)
    try:
        nodes = [n for n in sqlglot.parse(text, read="duckdb")
                 if n is not None and not isinstance(n, exp.Semicolon)]
    except SqlglotParseError as err:
        first = err.errors[0] if err.errors else {}
        desc = clean_description(first.get("description") or str(err))
        raise ParseError(f"expression does not parse: {desc}",
                         parse_error_location(first, path, source)) from err
    except TokenError as err:
        raise ParseError(f"expression does not parse: {err}",
                         location_at(path, source, start)) from err
    if not nodes:
        raise ParseError("the expression is empty", location_at(path, source, start))
    if len(nodes) > 1:
        raise ParseError("write one expression (no ';')",
                         location_at(path, source, _first_semicolon(text)))
    return nodes[0]


def _first_semicolon(text: str) -> int:
    """The offset of the first ';' token of ``text`` (0 when there is none)."""
    try:
        tokens = Tokenizer().tokenize(text)
    except TokenError:
        return 0
    return next((t.start for t in tokens if t.token_type == TokenType.SEMICOLON), 0)


def references(node: exp.Expression) -> list[exp.Column]:
    """Every tag reference (column) in ``node``, in source order."""
    columns = list(node.find_all(exp.Column))
    return sorted(columns, key=lambda c: (c.this.meta or {}).get("start", 0))


def referenced_names(node: exp.Expression) -> tuple[str, ...]:
    """The tag names ``node`` reads, each once, in order of first appearance."""
    return tuple(dict.fromkeys(c.name.lower() for c in references(node)))


def unknown_names(node: exp.Expression, known: Mapping[str, object], path: Path | None,
                  source: str, context: str = "") -> list[KequnError]:
    """A located error (with a "did you mean") for each reference to an unknown tag."""
    return [ValidationError(f"unknown tag '{column.name.lower()}'{context}",
                            node_location(column, path, source),
                            hint=did_you_mean(column.name.lower(), known))
            for column in references(node) if column.name.lower() not in known]


def _is_date_literal(node: exp.Expression) -> bool:
    if isinstance(node, exp.Literal) and node.is_string:
        try:
            date.fromisoformat(node.this)
        except ValueError:
            return False
        return len(node.this) == 10
    return False


class _Checker:
    """Infers the type of each node; raises ValidationError at the first mismatch."""

    def __init__(self, types: Mapping[str, str], path: Path | None, source: str):
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
        raise self.error(node, f"{self.describe(node)} is not allowed in an expression over "
                               f"tags (allowed: {ALLOWED})")

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


def infer_type(node: exp.Expression, types: Mapping[str, str], path: Path | None,
               source: str) -> str:
    """The value type ``node`` produces given each tag's type; 'null' for a bare NULL.

    Unknown names infer as 'null' (reported separately by :func:`unknown_names`).
    Raises :class:`~kequn.errors.ValidationError` at the first operand of the wrong type.
    """
    return _Checker(types, path, source).infer(node)


def check_condition(node: exp.Expression, types: Mapping[str, str], path: Path | None,
                    source: str) -> None:
    """Raise a located ValidationError unless ``node`` is a condition (boolean or NULL)."""
    kind = infer_type(node, types, path, source)
    if kind not in ("boolean", NULL):
        text = node.sql(dialect="duckdb")
        article = "an" if kind[:1] in "aeiou" else "a"
        raise ValidationError(f"'{text}' is {article} {kind} value, not a condition (compare "
                              f"it, e.g. {text} > 0)", node_location(node, path, source))


def fits(inferred: str, declared: str) -> bool:
    """Whether an expression of type ``inferred`` may fill a tag declared ``declared``."""
    return inferred in (NULL, declared) or (inferred == "integer" and declared == "decimal")


def leaf_conditions(condition: exp.Expression) -> list[exp.Expression]:
    """A condition's atomic conditions (what ``explain`` evaluates one by one), in order.

    >>> [c.sql() for c in leaf_conditions(sqlglot.parse_one("a AND NOT (b OR c > 1)"))]
    ['a', 'b', 'c > 1']
    """
    if isinstance(condition, exp.Paren):
        return leaf_conditions(condition.this)
    if isinstance(condition, (exp.And, exp.Or)):
        return leaf_conditions(condition.this) + leaf_conditions(condition.expression)
    if isinstance(condition, exp.Not):
        inner = condition.this.unnest() if isinstance(condition.this, exp.Paren) else condition.this
        if isinstance(inner, (exp.And, exp.Or)):
            return leaf_conditions(inner)
    return [condition]
