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
forbidden. This module imports neither DuckDB nor Dagster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kequn.errors import KequnError, ValidationError, raise_collected
from kequn.header import DefinitionFile

SYNC_KEYS: frozenset[str] = frozenset(
    {
        "sync",
        "sync_schedule",
        "max_removed_ratio",
        "max_added_ratio",
        "min_size",
        "allow_empty_replace",
    }
)

ENABLING_KEYS: frozenset[str] = SYNC_KEYS - {"min_size"}
"""Keys whose presence (without ``sync off``) makes a segment synced."""

SYNC_TARGET = "coupon_eligibility"
DEFAULT_SYNC_TIME = "06:00"
DEFAULT_CRON = "0 6 * * *"
DEFAULT_MAX_REMOVED_RATIO = 0.5

_ON = {"on", "true", "yes", "1", SYNC_TARGET}
_OFF = {"off", "false", "no", "0", "none"}

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


def _ratio(defn: DefinitionFile, key: str) -> float | None:
    text = defn.string(key).strip()
    if text.lower() in ("none", "off"):
        return None
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise ValidationError(
            f"'{key}' must be a ratio such as 0.5 or 50%, not '{text}'", defn.location(key)
        ) from None
    if value < 0:
        raise ValidationError(f"'{key}' cannot be negative ('{text}')", defn.location(key))
    return value


def _bool(defn: DefinitionFile, key: str) -> bool:
    text = defn.string(key).strip().lower()
    if text in _ON - {SYNC_TARGET}:
        return True
    if text in _OFF:
        return False
    raise ValidationError(
        f"'{key}' must be true or false, not '{defn.string(key)}'", defn.location(key)
    )


def sync_settings_from_header(defn: DefinitionFile) -> SyncSettings | None:
    """The sync settings of a SEGMENT definition, or None when it is not synced.

    Every bad value is reported (collected) at the value's own line and column.
    """
    if not ENABLING_KEYS & set(defn.fields):
        return None
    errors: list[KequnError] = []
    if "sync" in defn.fields:
        switch = defn.string("sync").strip().lower()
        if switch in _OFF:
            return None
        if switch not in _ON:
            raise ValidationError(
                f"'sync' must be on, off or {SYNC_TARGET}, not '{defn.string('sync')}'",
                defn.location("sync"),
            )

    values: dict[str, object] = {}

    def read(key: str, reader) -> None:  # type: ignore[no-untyped-def]
        if key not in defn.fields:
            return
        try:
            values[key] = reader()
        except KequnError as exc:
            errors.append(exc)

    def schedule() -> tuple[str, str]:
        text = defn.string("sync_schedule")
        try:
            return schedule_to_cron(text), text
        except ValueError as exc:
            raise ValidationError(f"sync_schedule {exc}", defn.location("sync_schedule")) from None

    def min_size() -> int:
        text = defn.string("min_size").strip()
        if text.lower() == "none":
            return 0
        if not text.isdigit():
            raise ValidationError(
                f"'min_size' must be a whole number of members, not '{text}'",
                defn.location("min_size"),
            )
        return int(text)

    read("sync_schedule", schedule)
    read("max_removed_ratio", lambda: _ratio(defn, "max_removed_ratio"))
    read("max_added_ratio", lambda: _ratio(defn, "max_added_ratio"))
    read("min_size", min_size)
    read("allow_empty_replace", lambda: _bool(defn, "allow_empty_replace"))
    raise_collected(errors)

    cron, text = values.get("sync_schedule", (DEFAULT_CRON, "daily"))  # type: ignore[misc]
    return SyncSettings(
        cron=cron,
        schedule=text,
        max_removed_ratio=values.get("max_removed_ratio", DEFAULT_MAX_REMOVED_RATIO),  # type: ignore[arg-type]
        max_added_ratio=values.get("max_added_ratio"),  # type: ignore[arg-type]
        min_size=values.get("min_size", 0),  # type: ignore[arg-type]
        allow_empty_replace=values.get("allow_empty_replace", False),  # type: ignore[arg-type]
    )
