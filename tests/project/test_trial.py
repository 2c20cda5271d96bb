"""Trial calculation (DESIGN §12): worked examples checked by hand, and the invariants.

Each worked example's comment is the hand arithmetic; the test compares the module's
output to the numbers written there. r = R/12 throughout; amounts round half-up to the cent.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from project.trial import (
    Coupon,
    Loan,
    LoanBounds,
    TrialError,
    add_months,
    max_reduction,
    repayment_plan,
)

JAN31 = date(2026, 1, 31)
JAN15 = date(2026, 1, 15)


def amounts(plan, column):  # type: ignore[no-untyped-def]
    return [str(getattr(p, column)) for p in plan.periods]


def ep12000(*coupons: Coupon):  # type: ignore[no-untyped-def]
    return repayment_plan(Loan(D("12000"), D("0.12"), 12, "equal_principal", JAN31), coupons)


def ei10000(*coupons: Coupon):  # type: ignore[no-untyped-def]
    return repayment_plan(Loan(D("10000"), D("0.12"), 3, "equal_installment", JAN15), coupons)


def test_equal_principal_plain_and_due_days_clamped() -> None:
    # P = 12000, R = 12% -> r = 0.01, N = 12, S = 2026-01-31.
    # principal_k = 12000/12 = 1000.00; outstanding before period k = 12000 - 1000(k-1)
    # interest_k = outstanding * 0.01 = 120, 110, 100, ..., 10; total = 10 * (1+...+12) = 780.
    # Due: S + 1 month = 2026-02-28 (31 clamped to Feb's end), S + 2 = 2026-03-31 (from S,
    # not from the previous due day), S + 3 = 2026-04-30. Days: Jan31->Feb28 = 28,
    # Feb28->Mar31 = 31, Mar31->Apr30 = 30.
    plan = ep12000()
    assert amounts(plan, "principal") == ["1000.00"] * 12
    assert amounts(plan, "interest") == [f"{10 * (12 - k)}.00" for k in range(12)]
    assert [p.due for p in plan.periods[:3]] == [date(2026, 2, 28), date(2026, 3, 31),
                                                 date(2026, 4, 30)]
    assert [p.days for p in plan.periods[:3]] == [28, 31, 30]
    assert (str(plan.total_interest), str(plan.total_reduction), str(plan.total_payable)) == (
        "780.00", "0.00", "12780.00")


def test_interest_free_days_prorates_by_calendar_days() -> None:
    # D = 30 free days from S = Jan 31: [Jan 31, Mar 2).
    # Period 1 (Jan 31 -> Feb 28): d = 28, f = 28 -> 120.00 * 28/28 = 120.00.
    # Period 2 (Feb 28 -> Mar 31): d = 31, f = Mar 2 - Feb 28 = 2 -> 110 * 2/31 = 7.0967.. = 7.10.
    # Later periods: f = 0. Total reduction 127.10; payable 12780 - 127.10 = 12652.90.
    plan = ep12000(Coupon("interest_free_days", D(30)))
    assert amounts(plan, "reduction")[:3] == ["120.00", "7.10", "0.00"]
    assert str(plan.total_reduction) == "127.10"
    assert str(plan.total_payable) == "12652.90"
    assert str(plan.periods[1].payable) == "1102.90"  # 1000 + 110 - 7.10


def test_rate_discount_takes_the_unpaid_share_of_each_period() -> None:
    # x = 0.8: the customer pays 80%, reduction_k = interest_k * 0.2 = 24, 22, ..., 2.
    # Total = 0.2 * 780 = 156.00.
    plan = ep12000(Coupon("rate_discount", D("0.8")))
    assert amounts(plan, "reduction") == [f"{2 * (12 - k)}.00" for k in range(12)]
    assert str(plan.total_reduction) == "156.00"


def test_amount_off_is_taken_from_period_one_then_two() -> None:
    # A = 200: period 1 interest 120 -> 120 taken (80 left); period 2 interest 110 -> 80.
    plan = ep12000(Coupon("amount_off", D("200")))
    assert amounts(plan, "reduction")[:3] == ["120.00", "80.00", "0.00"]
    assert str(plan.total_reduction) == "200.00"


def test_equal_installment_worked_example() -> None:
    # P = 10000, r = 0.01, N = 3. (1.01)^3 = 1.030301.
    # A = 10000 * 0.01 * 1.030301 / 0.030301 = 103.0301 / 0.030301 = 3400.2211 -> 3400.22.
    # k=1: interest 10000 * 0.01 = 100.00, principal 3400.22 - 100 = 3300.22, left 6699.78.
    # k=2: interest 66.9978 -> 67.00, principal 3333.22, left 3366.56.
    # k=3: interest 33.6656 -> 33.67, principal = what is left 3366.56; payment 3400.23.
    # Total interest 200.67; total payable 10200.67.
    plan = ei10000()
    assert amounts(plan, "interest") == ["100.00", "67.00", "33.67"]
    assert amounts(plan, "principal") == ["3300.22", "3333.22", "3366.56"]
    assert amounts(plan, "payable") == ["3400.22", "3400.22", "3400.23"]
    assert str(plan.total_payable) == "10200.67"


def test_interest_free_days_on_equal_installment() -> None:
    # S = 2026-01-15, D = 45: free days [Jan 15, Mar 1).
    # Period 1 (Jan 15 -> Feb 15): d = 31, f = 31 -> 100.00.
    # Period 2 (Feb 15 -> Mar 15): d = 28, f = Mar 1 - Feb 15 = 14 -> 67.00 * 14/28 = 33.50.
    # Period 3: f = 0. Total 133.50.
    plan = ei10000(Coupon("interest_free_days", D(45)))
    assert amounts(plan, "reduction") == ["100.00", "33.50", "0.00"]


def test_rate_discount_limited_to_its_periods_and_stacked_coupons() -> None:
    # rate_discount 0.8 for period 1 only: 100.00 * 0.2 = 20.00, then nothing.
    assert amounts(ei10000(Coupon("rate_discount", D("0.8"), 1)), "reduction") == [
        "20.00", "0.00", "0.00"]
    # Stacked in order: 20.00 off period 1 first (80.00 left there), then amount_off 100
    # takes 80.00 from period 1 and 20.00 from period 2. Per period: 100.00, 20.00, 0.00.
    plan = ei10000(Coupon("rate_discount", D("0.8"), 1), Coupon("amount_off", D("100")))
    assert amounts(plan, "reduction") == ["100.00", "20.00", "0.00"]


def test_amount_off_never_exceeds_the_interest() -> None:
    # A = 500 but the whole interest is 100 + 67 + 33.67 = 200.67: all of it, no more.
    plan = ei10000(Coupon("amount_off", D("500")))
    assert amounts(plan, "reduction") == ["100.00", "67.00", "33.67"]
    assert str(plan.total_reduction) == "200.67"


def test_half_up_rounding_to_the_cent() -> None:
    # P = 1000.50, r = 0.01, N = 1: interest = 10.005 -> 10.01 half-up (half-even: 10.00).
    plan = repayment_plan(Loan(D("1000.50"), D("0.12"), 1, "equal_principal", JAN15))
    assert amounts(plan, "interest") == ["10.01"]
    # 1000.00 at 7.3% for 1 month: r = 0.0060833.., interest 6.0833.. -> 6.08.
    plan = repayment_plan(Loan(D("1000"), D("0.073"), 1, "equal_installment", JAN15))
    assert amounts(plan, "interest") == ["6.08"]


def test_zero_rate_splits_the_principal() -> None:
    # r = 0: A = 1000/3 = 333.33; the last period takes 1000 - 666.66 = 333.34.
    plan = repayment_plan(Loan(D("1000"), D("0"), 3, "equal_installment", JAN15))
    assert amounts(plan, "principal") == ["333.33", "333.33", "333.34"]
    assert str(plan.total_interest) == "0.00"


def test_add_months_clamps_leap_years() -> None:
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2024, 1, 31), 13) == date(2025, 2, 28)
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)


@pytest.mark.parametrize("loan, coupon, message", [
    (Loan(D("0"), D("0.1"), 3, "equal_principal", JAN15), None, "principal must be positive"),
    (Loan(D("1.001"), D("0.1"), 3, "equal_principal", JAN15), None, "two decimals"),
    (Loan(D("100"), D("0.1"), 0, "equal_principal", JAN15), None, "term must be"),
    (Loan(D("100"), D("0.1"), 3, "balloon", JAN15), None, "method must be"),
    (Loan(D("100"), D("0.1"), 3, "equal_principal", JAN15), Coupon("rate_discount", D("1.5")),
     "rate_discount must lie"),
    (Loan(D("100"), D("0.1"), 3, "equal_principal", JAN15), Coupon("cashback", D("1")),
     "coupon type must be"),
])
def test_bad_input_is_named(loan: Loan, coupon: Coupon | None, message: str) -> None:
    with pytest.raises(TrialError, match=message):
        repayment_plan(loan, [coupon] if coupon else [])


# -- invariants ---------------------------------------------------------------------------
principals = st.integers(min_value=1, max_value=50_000_000).map(lambda c: D(c) / 100)
rates = st.integers(min_value=0, max_value=3600).map(lambda bp: D(bp) / 10000)
terms = st.integers(min_value=1, max_value=60)
methods = st.sampled_from(("equal_installment", "equal_principal"))
starts = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))
loans = st.builds(Loan, principals, rates, terms, methods, starts)
coupons = st.one_of(
    st.builds(Coupon, st.just("interest_free_days"), st.integers(0, 400).map(D)),
    st.builds(Coupon, st.just("rate_discount"), st.integers(0, 100).map(lambda p: D(p) / 100),
              st.one_of(st.none(), st.integers(1, 12))),
    st.builds(Coupon, st.just("amount_off"), st.integers(0, 10_000_00).map(lambda c: D(c) / 100)),
)


@settings(max_examples=200, deadline=None)
@given(loans, st.lists(coupons, max_size=3))
def test_principal_sums_and_reductions_stay_within_interest(loan: Loan, chosen) -> None:  # type: ignore[no-untyped-def]
    plan = repayment_plan(loan, chosen)
    assert plan.total_principal == loan.principal
    assert len(plan.periods) == loan.term
    for p in plan.periods:
        assert p.principal >= 0
        assert D(0) <= p.reduction <= p.interest
        assert p.payable == p.principal + p.interest - p.reduction
        for amount in (p.principal, p.interest, p.reduction):
            assert amount == amount.quantize(D("0.01"))
    assert plan.total_reduction <= plan.total_interest


@settings(max_examples=100, deadline=None)
@given(loans)
def test_a_zero_coupon_is_the_plain_plan(loan: Loan) -> None:
    plain = repayment_plan(loan)
    for zero in (Coupon("interest_free_days", D(0)), Coupon("rate_discount", D(1)),
                 Coupon("amount_off", D(0))):
        tried = repayment_plan(loan, [zero])
        assert tried.periods == plain.periods
        assert tried.total_reduction == 0


@settings(max_examples=100, deadline=None)
@given(loans, coupons)
def test_max_reduction_bounds_every_loan_within_the_bounds(loan: Loan, coupon: Coupon) -> None:
    bounds = LoanBounds(loan.principal + D(7), loan.term + 2, loan.annual_rate + D("0.01"))
    assert repayment_plan(loan, [coupon]).total_reduction <= max_reduction(coupon, bounds)


def test_due_days_follow_the_start() -> None:
    plan = repayment_plan(Loan(D("100"), D("0.1"), 24, "equal_principal", date(2024, 2, 29)))
    assert plan.periods[0].due == date(2024, 3, 29)
    assert plan.periods[11].due == date(2025, 2, 28)
    assert sum(p.days for p in plan.periods) == (plan.periods[-1].due - date(2024, 2, 29)).days
    assert all(p.days >= 28 for p in plan.periods)
    assert timedelta(days=plan.periods[0].days) == plan.periods[0].due - date(2024, 2, 29)
