"""Exact division (plan/division.py): the compiled ``x / y`` against Python's Decimal.

DuckDB alone here (the same comparison on Spark is tests/spark_engine/test_division.py).
Without the rewrite DuckDB divides decimals as doubles, and an exact tie at the fifth place
(52700 / 80000 = 0.65875) is stored as 0.6587: the first test fails.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext

import duckdb
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from plan.division import EXACT, QUOTIENT_SCALE, exact_division, quotient, without_hugeint
from plan.segments import rule_query
from plan.spark import bind
from plan.tags import stored_scale

STORED = "DECIMAL(18,4)"
UNIT = Decimal("0.0001")
LIMIT = Decimal("99999999999999.9999")  # the largest DECIMAL(18,4)


def expected(x: Decimal | None, y: Decimal | None, scale: int = 4) -> Decimal | None:
    """The exact quotient rounded half away from zero to ``scale`` places (NULL on zero)."""
    if x is None or y is None or y == 0:
        return None
    with localcontext() as context:
        context.prec = 80  # the exact quotient's digits, before the one rounding
        return (x / y).quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)


def compiled(pairs: list[tuple[Decimal | None, Decimal | None]], expression: str = "x / y",
             target: str = STORED, scale: int = 4) -> list[Decimal | None]:
    """``expression`` over rows ``(x, y)`` of DECIMAL(18,4), compiled and run on DuckDB."""
    if not pairs:
        return []
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t (i INTEGER, x {STORED}, y {STORED})")
    con.executemany("INSERT INTO t VALUES (?, ?, ?)",
                    [(i, x, y) for i, (x, y) in enumerate(pairs)])
    value = exact_division(sqlglot.parse_one(expression, read="duckdb"), scale)
    query = exp.select(exp.cast(value, exp.DataType.build(target))).from_("t").order_by("i")
    return [row[0] for row in con.execute(query.sql(dialect="duckdb")).fetchall()]


TIES = [(Decimal(52700), Decimal(80000)), (Decimal(25100), Decimal(80000)),
        (Decimal(-52700), Decimal(80000)), (Decimal(52700), Decimal(-80000)),
        (Decimal(-25100), Decimal(-80000)), (Decimal("0.0001"), Decimal(2)),
        (Decimal("-0.0001"), Decimal(2)), (Decimal(1), Decimal(16))]


def test_exact_ties_round_half_away_from_zero() -> None:
    assert compiled(TIES) == [Decimal("0.6588"), Decimal("0.3138"), Decimal("-0.6588"),
                              Decimal("-0.6588"), Decimal("0.3138"), Decimal("0.0001"),
                              Decimal("-0.0001"), Decimal("0.0625")]
    # the double division it replaces rounds the first tie down
    plain = duckdb.connect().execute(
        f"SELECT CAST(52700::{STORED} / 80000::{STORED} AS {STORED})").fetchone()
    assert plain == (Decimal("0.6587"),)


def test_zero_or_null_divisor_and_null_dividend_give_null() -> None:
    pairs = [(Decimal(5), Decimal(0)), (Decimal(0), Decimal(0)), (Decimal(5), None),
             (None, Decimal(5)), (Decimal(0), Decimal(-3))]
    assert compiled(pairs) == [None, None, None, None, Decimal(0)]


def test_non_terminating_large_and_extreme_quotients() -> None:
    pairs = [(Decimal(1), Decimal(3)), (Decimal(2), Decimal(3)), (Decimal(-2), Decimal(3)),
             (LIMIT, LIMIT - UNIT), (UNIT, LIMIT), (LIMIT, Decimal(1)), (-LIMIT, Decimal(-1)),
             (Decimal("12345678901.2345"), Decimal("0.0007"))]
    assert compiled(pairs) == [expected(x, y) for x, y in pairs]


def test_a_quotient_beyond_the_stored_type_is_an_error_not_a_wrong_value() -> None:
    with pytest.raises(duckdb.Error, match=r"out of range|[Oo]verflow"):
        compiled([(LIMIT, UNIT)])


decimals = st.decimals(min_value=-LIMIT, max_value=LIMIT, places=4, allow_nan=False,
                       allow_infinity=False)


@st.composite
def tie(draw) -> tuple[Decimal, Decimal]:
    """``(x, y)`` whose quotient ends in 5 at the fifth decimal place: an exact tie."""
    y = draw(st.integers(min_value=1, max_value=10 ** 8)) * draw(st.sampled_from([1, -1]))
    k = draw(st.integers(min_value=-10 ** 9, max_value=10 ** 9)) * 10 + 5
    x = Decimal(y) * k / 100000  # x / y = k / 10^5, exactly
    return x.quantize(UNIT), Decimal(y)


pairs = st.lists(st.one_of(st.tuples(decimals, decimals), tie(),
                           st.tuples(decimals, st.integers(1, 99).map(Decimal))),
                 min_size=1, max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs)
def test_compiled_division_is_decimal_arithmetic_rounded_half_up(rows) -> None:
    rows = [(x, y) for x, y in rows if y == 0 or abs(x / y) <= LIMIT]
    assert compiled(rows) == [expected(x, y) for x, y in rows]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.tuples(decimals, decimals), tie()), min_size=1, max_size=40))
def test_an_integer_tag_rounds_the_quotient_half_up_to_a_whole_number(rows) -> None:
    rows = [(x, y) for x, y in rows if y == 0 or abs(x / y) <= LIMIT]
    values = compiled(rows, target="BIGINT", scale=0)
    assert values == [None if e is None else int(e) for e in (expected(x, y, 0)
                                                             for x, y in rows)]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.tuples(decimals, decimals), tie()), min_size=1, max_size=40))
def test_floor_and_ceil_of_a_quotient_are_exact_whole_numbers(rows) -> None:
    rows = [(x, y) for x, y in rows if y == 0 or abs(x / y) <= LIMIT]
    rows += [(Decimal("2.9999"), Decimal(1)), (Decimal("-2.9999"), Decimal(1)),
             (Decimal("299999999.9999"), Decimal(100000000)), (Decimal(6), Decimal(-3))]

    def whole(x, y, rounding):
        if y == 0:
            return None
        with localcontext() as context:
            context.prec = 80
            return (x / y).to_integral_value(rounding=rounding)

    for function, rounding in (("floor", ROUND_FLOOR), ("ceil", ROUND_CEILING)):
        assert compiled(rows, f"{function}(x / y)", target="BIGINT") == [
            whole(x, y, rounding) for x, y in rows]


def test_a_quotient_inside_other_arithmetic_is_rounded_to_four_places() -> None:
    # 1/3 -> 0.3333, then * 3 = 0.9999 (not 1): the documented rule, the same on both engines
    assert compiled([(Decimal(1), Decimal(3))], "x / y * 3") == [Decimal("0.9999")]
    # a quotient kept through CASE, COALESCE, GREATEST, unary minus is the stored value
    assert compiled([(Decimal(52700), Decimal(80000))],
                    "CASE WHEN y > 0 THEN -COALESCE(GREATEST(x / y, 0), 0) END",
                    target="BIGINT", scale=0) == [-1]
    assert compiled([(Decimal(1), Decimal(8))], "(x / y) / y", scale=4) == [Decimal("0.0156")]


def test_the_stored_scale_depends_on_where_the_quotient_is() -> None:
    node = exact_division(sqlglot.parse_one(
        "CASE WHEN a / b > 1 THEN ABS(c / d) ELSE (e / f) + 1 END"), 0)
    scales = sorted(int(c.to.expressions[1].name) for c in node.find_all(exp.Cast)
                    if c.to.sql() .startswith("DECIMAL(18"))
    assert scales == [0, QUOTIENT_SCALE, QUOTIENT_SCALE]
    assert node.find(exp.Div) is None


def test_the_shipped_decimal_tag_is_compiled_without_a_plain_division(plan) -> None:
    column = plan.columns["limit_utilisation"]
    assert column.find(exp.Div) is None
    assert any(d.meta.get(EXACT) for d in column.find_all(exp.IntDiv))
    assert stored_scale(plan.tags["limit_utilisation"]) == 4
    assert stored_scale(plan.tags["loan_count"]) == 0


def test_spark_gets_decimals_instead_of_hugeint_and_no_wrapping_div() -> None:
    sql = bind(quotient(exp.column("x"), exp.column("y"), 4), {}).sql(dialect="spark")
    assert "INT128" not in sql and " DIV " not in sql.upper()
    assert "DECIMAL(38, 0)" in sql
    plain = without_hugeint(sqlglot.parse_one("SELECT a // b, CAST(c AS HUGEINT)",
                                              read="duckdb"))
    assert plain.find(exp.IntDiv) is not None  # only the divisions made here are rewritten
    assert plain.sql(dialect="spark") == "SELECT a DIV b, CAST(c AS DECIMAL(38, 0))"


def test_a_rule_segment_compares_an_exact_quotient() -> None:
    _, query = rule_query(sqlglot.parse_one("outstanding_principal / credit_limit > 0.5"))
    assert query.find(exp.Div) is None
