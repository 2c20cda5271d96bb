"""Combine segments: ``union (a, b)`` or ``expression '(a UNION b) EXCEPT c'``, parsed.

Precedence follows SQL: INTERSECT binds tighter than UNION and EXCEPT, which associate
left to right; parentheses nest. Each segment reference keeps where it stands, so an
unknown name is reported at its ``file:line:col``; :mod:`plan.segments` turns the tree
into SQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlglot.errors import TokenError
from sqlglot.tokens import Token, Tokenizer, TokenType

from kequn.errors import Location, ParseError, ValidationError, location_at

SET_OPS = ("union", "intersect", "except")
_OPS = {"UNION": "union", "INTERSECT": "intersect", "EXCEPT": "except"}


@dataclass(frozen=True)
class SegmentRef:
    """A reference to another segment inside a combine expression."""

    name: str
    location: Location


@dataclass(frozen=True)
class SetOp:
    """``left <op> right`` over segments; ``op`` is union, intersect or except."""

    op: str
    left: CombineExpr
    right: CombineExpr


CombineExpr = SegmentRef | SetOp


def parse_combine_field(op: str, names: list[str], location: Location) -> CombineExpr:
    """``union (a, b, c)`` as a left-deep tree; needs at least two segments."""
    if len(names) < 2:
        raise ValidationError(f"'{op}' needs at least two segments, e.g. {op} (a, b)", location)
    node: CombineExpr = SegmentRef(names[0], location)
    for name in names[1:]:
        node = SetOp(op, node, SegmentRef(name, location))
    return node


def parse_combine_text(text: str, path: Path | None = None, source: str | None = None,
                       offset: int = 0) -> CombineExpr:
    """Parse a set expression such as ``(a UNION b) EXCEPT c``.

    ``source``/``offset`` place the text inside its definition file so that errors
    point at the right line and column.

    >>> render(parse_combine_text("a UNION b INTERSECT c"))
    'a UNION (b INTERSECT c)'
    >>> render(parse_combine_text("(a UNION b) EXCEPT c"))
    '(a UNION b) EXCEPT c'
    """
    source = source if source is not None else text

    def loc(token: Token | None) -> Location:
        return location_at(path, source, offset + (token.start if token else len(text)))

    try:
        tokens = Tokenizer().tokenize(text)
    except TokenError as exc:
        raise ParseError(f"cannot read the combine expression: {exc}", loc(None)) from exc
    pos = 0

    def peek() -> Token | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> Token:
        nonlocal pos
        token = tokens[pos]
        pos += 1
        return token

    def factor() -> CombineExpr:
        token = peek()
        if token is None:
            raise ParseError("the combine expression ends early; expected a segment name",
                             loc(None))
        if token.token_type == TokenType.L_PAREN:
            take()
            node = union_level()
            close = peek()
            if close is None or close.token_type != TokenType.R_PAREN:
                raise ParseError("expected ')'", loc(close))
            take()
            return node
        if token.text.upper() in _OPS or token.token_type in (TokenType.R_PAREN,
                                                                TokenType.STRING,
                                                                TokenType.NUMBER):
            raise ParseError(f"expected a segment name, found '{token.text}'", loc(token))
        take()
        return SegmentRef(token.text, loc(token))

    def intersect_level() -> CombineExpr:
        node = factor()
        while (token := peek()) is not None and token.text.upper() == "INTERSECT":
            take()
            node = SetOp("intersect", node, factor())
        return node

    def union_level() -> CombineExpr:
        node = intersect_level()
        while (token := peek()) is not None and token.text.upper() in ("UNION", "EXCEPT"):
            take()
            node = SetOp(_OPS[token.text.upper()], node, intersect_level())
        return node

    node = union_level()
    if (extra := peek()) is not None:
        raise ParseError(f"unexpected '{extra.text}' in the combine expression "
                         "(use UNION, INTERSECT, EXCEPT and parentheses)", loc(extra))
    return node


def referenced_segments(node: CombineExpr | None) -> list[str]:
    """Names of the segments an expression reads, in order of first appearance."""
    return list(dict.fromkeys(ref.name for ref in walk_refs(node)))


def walk_refs(node: CombineExpr | None) -> Iterator[SegmentRef]:
    """Every segment reference in the expression, left to right."""
    if isinstance(node, SegmentRef):
        yield node
    elif isinstance(node, SetOp):
        yield from walk_refs(node.left)
        yield from walk_refs(node.right)


def render(node: CombineExpr) -> str:
    """The expression as text with explicit parentheses: ``(a UNION b) EXCEPT c``."""
    if isinstance(node, SegmentRef):
        return node.name
    left = render(node.left)
    right = render(node.right)
    if isinstance(node.left, SetOp):
        left = f"({left})"
    if isinstance(node.right, SetOp):
        right = f"({right})"
    return f"{left} {node.op.upper()} {right}"
