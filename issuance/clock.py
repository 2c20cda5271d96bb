"""Time for issuance: an injectable clock and Asia/Shanghai business days.

Every operation takes its ``now`` from a :class:`Clock`, so tests can stand at
23:59:59 and step to 00:00 of the next business day, or cross a month end. Business days
themselves are :mod:`kequn.days`.
The serving database holds ``TIMESTAMP`` columns as naive UTC (the convention of
:mod:`serving.db`); :func:`to_db` and :func:`from_db` convert at the boundary.

>>> from datetime import date, datetime
>>> business_day(datetime(2026, 1, 31, 16, 30, tzinfo=UTC)).isoformat()
'2026-02-01'
>>> to_db(day_start(date(2026, 2, 1)))
datetime.datetime(2026, 1, 31, 16, 0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from kequn.days import SHANGHAI, business_day, day_start, local

__all__ = [
    "SHANGHAI",
    "UTC",
    "Clock",
    "ManualClock",
    "SystemClock",
    "business_day",
    "day_start",
    "from_db",
    "local",
    "to_db",
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


def to_db(when: datetime) -> datetime:
    """``when`` as the naive UTC datetime a serving ``TIMESTAMP`` column holds."""
    return local(when).astimezone(UTC).replace(tzinfo=None)


def from_db(value: datetime) -> datetime:
    """A naive UTC value read from a ``TIMESTAMP`` column, as aware Asia/Shanghai time."""
    return value.replace(tzinfo=UTC).astimezone(SHANGHAI)
