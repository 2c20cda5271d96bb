"""Sync settings read from a SEGMENT header: whether, when, and within which guardrails.

Keys (all optional; a segment is synced when ``sync`` is on, or when ``sync`` is absent
and one of the sync-only keys is given; ``min_size`` is shared with the segment's own
size check and does not turn syncing on by itself)::

    SEGMENT (
      name overdue_now,
      sync on,                   -- on | off (also true/false, yes/no, coupon_eligibility)
      sync_schedule daily,       -- daily (06:00) | 'HH:MM' | a 5-field cron, Asia/Shanghai
      max_removed_ratio 0.5,     -- block when more than this share of members leaves
      max_added_ratio 2,         -- block when more than this share of members joins
      min_size 1000,             -- block when the new snapshot is smaller
      allow_empty_replace false, -- may an empty snapshot replace a non-empty one?
    );

Ratios are fractions of the currently synced membership (``0.5`` or ``50%``); they do
not apply to a first sync (nothing synced yet). Defaults: daily at 06:00 Asia/Shanghai,
``max_removed_ratio`` 0.5, no added-ratio limit, no minimum size, empty replace
forbidden. The keys are part of the SEGMENT kind (:data:`FIELDS`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kequn.errors import ValidationError
from kequn.header import HeaderField
from project import fields as f

SYNC_TARGET = "coupon_eligibility"
DEFAULT_SYNC_TIME = "06:00"
DEFAULT_CRON = "0 6 * * *"
DEFAULT_MAX_REMOVED_RATIO = 0.5


_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(_MONTHS)}),
    ("day of week", 0, 7, {d: i for i, d in enumerate(_WEEKDAYS)}),
)


@dataclass(frozen=True)
class SyncSettings:
    """How one segment is synced to ``coupon_eligibility``.

    ``cron`` is a 5-field cron in Asia/Shanghai; ``schedule`` is what the header said.
    A ratio of None means no limit.
    """

    cron: str = DEFAULT_CRON
    schedule: str = "daily"
    max_removed_ratio: float | None = DEFAULT_MAX_REMOVED_RATIO
    max_added_ratio: float | None = None
    min_size: int = 0
    allow_empty_replace: bool = False
    target: str = SYNC_TARGET


def _cron_value(text: str, names: dict[str, int]) -> int:
    lowered = text.lower()
    if lowered in names:
        return names[lowered]
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


def cron_problem(cron: str) -> str:
    """Why ``cron`` is not a valid 5-field cron expression, or '' when it is.

    >>> cron_problem("0 6 * * *")
    ''
    >>> cron_problem("0 25 * * *")
    "hour '25' is outside 0-23"
    """
    parts = cron.split()
    if len(parts) != 5:
        return f"a cron has 5 fields (minute hour day month weekday), this has {len(parts)}"
    for text, (label, low, high, names) in zip(parts, _CRON_FIELDS, strict=True):
        for item in text.split(","):
            body, _, step = item.partition("/")
            if step and (not step.isdigit() or int(step) == 0):
                return f"{label} step '{step}' is not a positive number"
            if body == "*":
                continue
            bounds = body.split("-")
            if len(bounds) > 2 or not all(bounds):
                return f"{label} '{item}' is not a number, range or list"
            try:
                values = [_cron_value(b, names) for b in bounds]
            except ValueError:
                return f"{label} '{item}' is not a number, range or list"
            for value in values:
                if not low <= value <= high:
                    return f"{label} '{value}' is outside {low}-{high}"
            if len(values) == 2 and values[0] > values[1]:
                return f"{label} range '{body}' runs backwards"
    return ""


def schedule_to_cron(text: str) -> str:
    """The cron for ``daily``, ``HH:MM`` or a cron; ValueError with the reason otherwise.

    >>> schedule_to_cron("daily"), schedule_to_cron("7:30"), schedule_to_cron("0 */4 * * *")
    ('0 6 * * *', '30 7 * * *', '0 */4 * * *')
    """
    value = text.strip()
    if value.lower() == "daily":
        return DEFAULT_CRON
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", value)
    if match:
        hour, minute = int(match.group(1)), int(match.group(2))
        if hour > 23 or minute > 59:
            raise ValueError(f"'{value}' is not a time of day (HH:MM, 00:00-23:59)")
        return f"{minute} {hour} * * *"
    problem = cron_problem(value)
    if problem:
        raise ValueError(f"'{value}' is not daily, HH:MM or a cron: {problem}")
    return " ".join(value.split())


def _switch(item: HeaderField) -> bool:
    value = f.text(item).strip().lower()
    if value in (*f.TRUE_WORDS, SYNC_TARGET):
        return True
    if value in (*f.FALSE_WORDS, "none"):
        return False
    raise ValidationError(f"'sync' must be on, off or {SYNC_TARGET}, not '{f.text(item)}'",
                          item.value_location)


def _schedule(item: HeaderField) -> tuple[str, str]:
    text = f.text(item)
    try:
        return schedule_to_cron(text), text
    except ValueError as exc:
        raise ValidationError(f"sync_schedule {exc}", item.value_location) from None


FIELDS: tuple[f.Field, ...] = (
    f.Field("sync", _switch, help="on | off: sync to coupon_eligibility"),
    f.Field("sync_schedule", _schedule, help="daily | 'HH:MM' | a cron, Asia/Shanghai"),
    f.Field("max_removed_ratio", f.ratio(), default=DEFAULT_MAX_REMOVED_RATIO),
    f.Field("max_added_ratio", f.ratio()),
    f.Field("allow_empty_replace", f.switch, default=False),
)
"""The sync keys of a SEGMENT header (``min_size`` is shared with the segment's checks)."""

ENABLING_KEYS = frozenset(field.key for field in FIELDS) - {"sync"}
"""Keys whose presence (without ``sync off``) makes a segment synced."""


def sync_settings(values: f.Values) -> SyncSettings | None:
    """The sync settings of a SEGMENT header, or None when it is not synced."""
    if values.given("sync"):
        if not values["sync"]:
            return None
    elif not any(values.given(key) for key in ENABLING_KEYS):
        return None
    cron, schedule = values["sync_schedule"] or (DEFAULT_CRON, "daily")
    return SyncSettings(
        cron=cron, schedule=schedule, max_removed_ratio=values["max_removed_ratio"],
        max_added_ratio=values["max_added_ratio"],
        min_size=(values["min_size"] or 0) if values.given("min_size") else 0,
        allow_empty_replace=values["allow_empty_replace"],
    )
