"""The issue limits as a pure decision: order of reasons and exact edges."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from issuance.limits import ISSUE_REFUSALS, Snapshot, refusal_for_counts


@given(stock=st.integers(1, 5), daily=st.integers(1, 5), per=st.integers(1, 3),
       issued=st.integers(0, 6), today=st.integers(0, 6), mine=st.integers(0, 4),
       eligible=st.booleans(), conflict=st.booleans(), in_window=st.booleans())
def test_refusal_is_the_first_broken_limit(stock: int, daily: int, per: int, issued: int,
                                           today: int, mine: int, eligible: bool,
                                           conflict: bool, in_window: bool) -> None:
    snapshot = Snapshot(eligible, issued, today, mine, conflict)
    broken = [
        not in_window, not eligible, issued >= stock, today >= daily, mine >= per, conflict,
    ]
    expected = next((r for r, b in zip(ISSUE_REFUSALS, broken, strict=True) if b), None)
    assert refusal_for_counts(total_stock=stock, daily_limit=daily, per_customer_limit=per,
                              in_window=in_window, snapshot=snapshot) == expected


def test_last_coupon_of_the_stock_is_issued() -> None:
    snapshot = Snapshot(True, 9, 0, 0, False)
    assert refusal_for_counts(total_stock=10, daily_limit=10, per_customer_limit=1,
                              in_window=True, snapshot=snapshot) is None
