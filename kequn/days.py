"""Business days in Asia/Shanghai (architecture §2).

"As of day D" means as known at the end of D: an event counts iff its (naive, local)
timestamp is before :func:`day_end` of D. Aware datetimes are Asia/Shanghai unless said.

>>> from datetime import datetime
>>> business_day(datetime(2026, 1, 31, 16, 30, tzinfo=UTC)).isoformat()
'2026-02-01'
>>> day_end(date(2026, 2, 28))
datetime.datetime(2026, 3, 1, 0, 0)
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

BUSINESS_TIMEZONE = "Asia/Shanghai"
SHANGHAI = ZoneInfo(BUSINESS_TIMEZONE)

__all__ = ["BUSINESS_TIMEZONE", "SHANGHAI", "UTC", "business_day", "day_end", "day_start",
           "local", "yesterday"]


def local(when: datetime) -> datetime:
    """``when`` as an aware Asia/Shanghai datetime (naive input is taken as local)."""
    if when.tzinfo is None:
        return when.replace(tzinfo=SHANGHAI)
    return when.astimezone(SHANGHAI)


def business_day(when: datetime) -> date:
    """The Asia/Shanghai calendar day that ``when`` falls on."""
    return local(when).date()


def day_start(day: date) -> datetime:
    """00:00 of ``day`` in Asia/Shanghai (aware)."""
    return datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)


def day_end(day: date) -> datetime:
    """The naive local instant that ends ``day`` (00:00 of the next day): events before it
    are known as of ``day``."""
    following = day + timedelta(days=1)
    return datetime(following.year, following.month, following.day)


def yesterday(now: datetime | None = None) -> date:
    """The last complete business day (the day before today in Asia/Shanghai)."""
    return business_day(now or datetime.now(UTC)) - timedelta(days=1)
