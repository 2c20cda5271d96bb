"""Time for issuance: an injectable clock and Asia/Shanghai business days.

Every operation takes its ``now`` from a :class:`Clock`, so tests can stand at
23:59:59 and step to 00:00 of the next business day, or cross a month end.
Stored timestamps are naive Asia/Shanghai local times written as fixed-width
text (``YYYY-MM-DD HH:MM:SS.ffffff``), which sort lexicographically in SQLite and
PostgreSQL alike.

>>> from datetime import datetime
>>> business_day(datetime(2026, 1, 31, 16, 30, tzinfo=UTC)).isoformat()
'2026-02-01'
>>> to_stored(day_start(date(2026, 2, 1)))
'2026-02-01 00:00:00.000000'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from kequn.settings import BUSINESS_TIMEZONE

SHANGHAI = ZoneInfo(BUSINESS_TIMEZONE)
STORED_FORMAT = "%Y-%m-%d %H:%M:%S.%f"

__all__ = [
    "SHANGHAI",
    "UTC",
    "Clock",
    "ManualClock",
    "SystemClock",
    "business_day",
    "day_start",
    "from_stored",
    "local",
    "to_stored",
]


class Clock(Protocol):
    """Something that tells the current time (timezone-aware)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock, in Asia/Shanghai."""

    def now(self) -> datetime:
        """The current instant, timezone-aware in Asia/Shanghai."""
        return datetime.now(SHANGHAI)


@dataclass
class ManualClock:
    """A clock that stands still until moved: for tests and replays."""

    current: datetime = field(default_factory=lambda: datetime.now(SHANGHAI))

    def __post_init__(self) -> None:
        self.current = local(self.current)

    def now(self) -> datetime:
        """The time the clock was last set to."""
        return self.current

    def set(self, when: datetime) -> None:
        """Stand at ``when`` (naive values are read as Asia/Shanghai)."""
        self.current = local(when)

    def advance(self, **delta: float) -> datetime:
        """Move forward by ``timedelta(**delta)`` and return the new time."""
        self.current = self.current + timedelta(**delta)
        return self.current


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


def to_stored(when: datetime) -> str:
    """The fixed-width, sortable text form of ``when`` in Asia/Shanghai local time."""
    return local(when).strftime(STORED_FORMAT)


def from_stored(text: str) -> datetime:
    """The aware datetime for a value written by :func:`to_stored`."""
    return datetime.strptime(text, STORED_FORMAT).replace(tzinfo=SHANGHAI)
