"""Asia/Shanghai business days and the injectable clock."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import given
from hypothesis import strategies as st

from issuance.clock import SHANGHAI, ManualClock, business_day, day_start, from_db, to_db


def test_business_day_boundaries() -> None:
    assert business_day(datetime(2026, 3, 10, 23, 59, 59, 999999)) == date(2026, 3, 10)
    assert business_day(datetime(2026, 3, 11, 0, 0)) == date(2026, 3, 11)
    assert business_day(datetime(2026, 1, 31, 15, 59, 59, tzinfo=UTC)) == date(2026, 1, 31)
    assert business_day(datetime(2026, 1, 31, 16, 0, tzinfo=UTC)) == date(2026, 2, 1)
    assert day_start(date(2026, 2, 1)) == datetime(2026, 1, 31, 16, 0, tzinfo=UTC)


def test_manual_clock_steps_over_midnight() -> None:
    clock = ManualClock(datetime(2026, 12, 31, 23, 59, 59))
    assert clock.now().tzinfo is not None and business_day(clock.now()) == date(2026, 12, 31)
    clock.advance(seconds=1)
    assert business_day(clock.now()) == date(2027, 1, 1)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                    timezones=st.just(SHANGHAI)))
def test_db_round_trip(when: datetime) -> None:
    stored = to_db(when)
    assert stored.tzinfo is None
    assert from_db(stored) == when
