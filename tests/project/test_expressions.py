"""The expression language over tags: parsing, and the one type checker."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kequn.errors import ParseError, ValidationError
from project.expressions import fits, infer_type, parse_expression

TYPES = {"b1": "boolean", "b2": "boolean", "n": "integer", "d": "decimal", "s": "string",
         "day": "date"}
PATH = Path("t.sql")


def typeof(text: str) -> str:
    return infer_type(parse_expression(text, PATH), TYPES, PATH, text)


@pytest.mark.parametrize(("text", "expected"), [
    ("b1 AND NOT b2", "boolean"),
    ("n + 1", "integer"),
    ("n * d", "decimal"),
    ("n / 2", "decimal"),
    ("-n", "integer"),
    ("n > 3 OR d <= 1.5", "boolean"),
    ("s IN ('A', 'B')", "boolean"),
    ("n BETWEEN 1 AND 30", "boolean"),
    ("n IS NULL", "boolean"),
    ("s IS NOT NULL", "boolean"),
    ("CASE WHEN b1 THEN 'x' WHEN n > 2 THEN 'y' END", "string"),
    ("CASE s WHEN 'A' THEN 1 ELSE 2.5 END", "decimal"),
    ("coalesce(n, 0)", "integer"),
    ("greatest(n, d)", "decimal"),
    ("day > '2025-01-01'", "boolean"),
    ("day - day", "integer"),
    ("day + 1", "date"),
    ("abs(n)", "integer"),
    ("NULL", "null"),
    ("b1 IS TRUE", "boolean"),
])
def test_types(text: str, expected: str) -> None:
    assert typeof(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("d AND b1", "t.sql:1:1: AND needs boolean operands, but 'd' is decimal"),
    ("b1 OR   s", "t.sql:1:9: OR needs boolean operands, but 's' is string"),
    ("NOT n", "t.sql:1:5: NOT needs boolean operands, but 'n' is integer"),
    ("s + 1", "t.sql:1:1: '+' needs integer or decimal operands, but 's' is string"),
    ("n = 'x'", "t.sql:1:5: comparison compares integer with string: 'x' is string"),
    ("s IN ('A', 2)", "t.sql:1:12: IN compares string with integer: '2' is integer"),
    ("CASE WHEN n THEN 1 END", "t.sql:1:11: WHEN needs boolean operands, but 'n' is integer"),
    ("upper(s) = 'A'", "t.sql:1:1: 'UPPER(s)' is not allowed in an expression over tags "
     "(allowed: AND, OR, NOT, + - * / %, comparisons, IN (...), BETWEEN, IS [NOT] NULL, CASE, "
     "COALESCE, GREATEST, LEAST, ABS)"),
    ("x.n > 1", "t.sql:1:1: refer to tags by name only, not 'x.n'"),
    ("day > '2025-13-01'", "t.sql:1:7: comparison compares date with string: '2025-13-01' "
     "is string"),
])
def test_type_errors_are_located(text: str, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        typeof(text)
    assert err.value.headline() == message


def test_parse_error_is_located() -> None:
    with pytest.raises(ParseError) as err:
        parse_expression("b1 AND (b2", PATH)
    assert err.value.headline() == "t.sql:1:9: expression does not parse: Expecting )"


def test_fits_widens_integer_to_decimal_only() -> None:
    assert fits("integer", "decimal") and fits("null", "date") and fits("boolean", "boolean")
    assert not fits("decimal", "integer") and not fits("boolean", "integer")


BOOLS = st.sampled_from(["b1", "b2", "n > 1", "s = 'A'", "d IS NULL", "TRUE"])


@st.composite
def boolean_expressions(draw: st.DrawFn, depth: int = 3) -> str:
    if depth == 0 or draw(st.booleans()):
        return draw(BOOLS)
    op = draw(st.sampled_from(["AND", "OR", "NOT"]))
    left = draw(boolean_expressions(depth - 1))
    if op == "NOT":
        return f"NOT ({left})"
    return f"({left}) {op} ({draw(boolean_expressions(depth - 1))})"


@given(boolean_expressions())
def test_any_boolean_composition_is_boolean(text: str) -> None:
    assert typeof(text) == "boolean"


@given(boolean_expressions(), st.sampled_from(["n", "d", "s", "day"]))
def test_a_non_boolean_operand_is_always_rejected_at_its_position(text: str, bad: str) -> None:
    expression = f"{text} AND {bad}"
    with pytest.raises(ValidationError) as err:
        typeof(expression)
    assert err.value.col == len(expression) - len(bad) + 1
    assert f"'{bad}' is {TYPES[bad]}" in err.value.message


TOKENS = st.sampled_from(["b1", "b2", "n", "d", "s", "day", "AND", "OR", "NOT", "+", "-", "*",
                          "/", "%", "=", "<>", "<", ">=", "(", ")", "1", "2.5", "'A'", "NULL",
                          "TRUE", "IN", "BETWEEN", "IS", "CASE", "WHEN", "THEN", "ELSE", "END",
                          ",", "coalesce(", "greatest(", "abs(", "upper(", "x.n", "'2025-01-01'",
                          "DATE", "SELECT", "*"])


@settings(max_examples=300, deadline=None)
@given(st.lists(TOKENS, min_size=1, max_size=15))
def test_any_expression_types_or_fails_with_a_located_error(tokens: list[str]) -> None:
    text = " ".join(tokens)
    try:
        kind = typeof(text)
    except (ValidationError, ParseError) as err:
        assert err.line >= 1 and err.col >= 1
    else:
        assert kind in ("boolean", "integer", "decimal", "string", "date", "null")
