"""Campaigns (活动): one definition file each, validated on load.

A campaign targets one synced segment and carries a coupon template. It is written
either as YAML (``sql/campaigns/<name>.yaml``) or as a ``CAMPAIGN (...)`` header in a
``.sql`` file; both use the same flat keys:

========================== =====================================================
key                        meaning
========================== =====================================================
name                       snake_case identity (required)
title, rules               display title; the rules text shown to customers
owner                      owning team, ``team:<dept>``
type                       ``wake_up`` (唤醒), ``credit`` (授信), ``drawdown`` (用信)
target_segment             the segment whose synced members are eligible
channels                   ``APP``, ``MINI_PROGRAM``, ``H5`` (a list) or ``all``
window_start, window_end   issuance window; a date end is inclusive (whole day)
interest_free_days         coupon template: N interest-free days, or
rate_discount              coupon template: multiply the interest by 0 < x < 1
validity_from, validity_to fixed validity (dates, inclusive), or
validity_starts_after_days dynamic validity: starts X days after issue ...
validity_days              ... and lasts Y days
total_stock                coupons the campaign may ever issue
daily_limit                coupons per Asia/Shanghai day (default: no daily cap)
per_customer_limit         coupons one customer may receive (default 1)
stacking                   ``exclusive`` (default) or ``stackable``
on_failed_drawdown         ``void`` (default) or ``restore``
lease_seconds              default occupation lease (default 900)
========================== =====================================================

Times are Asia/Shanghai. Every problem found in a file is reported together, each
as ``file:line:col: message``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeVar

from issuance.clock import day_start, local
from issuance.fields import RawCampaign, RawValue, read_raw
from kequn.errors import KequnError, Location, ValidationError, did_you_mean, raise_collected

CAMPAIGN_TYPES = ("wake_up", "credit", "drawdown")
CHANNELS = ("APP", "MINI_PROGRAM", "H5")
STACKING = ("exclusive", "stackable")
ON_FAILED_DRAWDOWN = ("void", "restore")
SUFFIXES = (".yaml", ".yml", ".sql")
DEFAULT_LEASE_SECONDS = 900

KEYS = frozenset({
    "name", "title", "rules", "owner", "type", "target_segment", "channels",
    "window_start", "window_end", "interest_free_days", "rate_discount",
    "validity_from", "validity_to", "validity_starts_after_days", "validity_days",
    "total_stock", "daily_limit", "per_customer_limit", "stacking", "on_failed_drawdown",
    "lease_seconds",
})

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_OWNER = re.compile(r"^team:[a-z0-9_\-]+$")
T = TypeVar("T")


@dataclass(frozen=True)
class CouponTemplate:
    """What the coupon gives: ``interest_free_days`` (int N) or ``rate_discount`` (0<x<1)."""

    kind: str
    value: int | Decimal

    def describe(self) -> str:
        """A short human description, e.g. ``30 interest-free days``."""
        if self.kind == "interest_free_days":
            return f"{self.value} interest-free days"
        return f"interest x {self.value}"


@dataclass(frozen=True)
class Validity:
    """When an issued coupon can be used: fixed dates, or relative to its issue time."""

    fixed_from: date | None = None
    fixed_to: date | None = None
    starts_after_days: int | None = None
    days: int | None = None

    @property
    def is_fixed(self) -> bool:
        return self.fixed_from is not None

    def period(self, issued_at: datetime) -> tuple[datetime, datetime]:
        """``[valid_from, valid_until)`` for a coupon issued at ``issued_at``.

        Fixed: from 00:00 of ``validity_from`` to the end of ``validity_to``.
        Dynamic: from ``issued_at + X days`` for ``Y`` days.
        """
        if self.fixed_from is not None and self.fixed_to is not None:
            return day_start(self.fixed_from), day_start(self.fixed_to + timedelta(days=1))
        start = local(issued_at) + timedelta(days=self.starts_after_days or 0)
        return start, start + timedelta(days=self.days or 0)

    def describe(self) -> str:
        """``2026-01-01..2026-01-31`` or ``+0d for 30d``."""
        if self.is_fixed:
            return f"{self.fixed_from}..{self.fixed_to}"
        return f"+{self.starts_after_days}d for {self.days}d"


@dataclass(frozen=True)
class Campaign:
    """A validated campaign definition."""

    name: str
    type: str
    target_segment: str
    window_start: datetime
    window_end: datetime  # exclusive
    template: CouponTemplate
    validity: Validity
    total_stock: int
    daily_limit: int | None
    per_customer_limit: int
    stacking: str
    on_failed_drawdown: str
    channels: frozenset[str] = frozenset(CHANNELS)
    title: str = ""
    rules: str = ""
    owner: str | None = None
    lease_seconds: int = DEFAULT_LEASE_SECONDS
    path: Path | None = None
    definition_hash: str = ""
    locations: dict[str, Location] = field(default_factory=dict, compare=False, repr=False)

    @property
    def exclusive(self) -> bool:
        return self.stacking == "exclusive"

    @property
    def effective_daily_limit(self) -> int:
        """The daily cap actually enforced (the total stock when none is set)."""
        return self.daily_limit if self.daily_limit is not None else self.total_stock

    def in_window(self, when: datetime) -> bool:
        """Whether ``when`` lies in ``[window_start, window_end)``."""
        return self.window_start <= local(when) < self.window_end

    def location(self, key: str) -> Location:
        """Where ``key`` is defined in the campaign's file (or the file itself)."""
        return self.locations.get(key) or Location(self.path)


class _Reader:
    """Typed access to raw fields that collects errors instead of stopping at the first."""

    def __init__(self, raw: RawCampaign):
        self.raw = raw
        self.errors: list[KequnError] = []

    def has(self, key: str) -> bool:
        return key in self.raw.fields

    def error(self, key: str, message: str, hint: str = "") -> None:
        self.errors.append(ValidationError(message, self.raw.location(key), hint=hint))

    def text(self, key: str, *, required: bool = False, default: str = "") -> str:
        item = self.raw.fields.get(key)
        if item is None:
            if required:
                self.error(key, f"campaign has no '{key}'")
            return default
        if isinstance(item.value, list):
            self.error(key, f"'{key}' takes one value, not a list")
            return default
        return item.value

    def parse(self, key: str, convert: Callable[[str], T], what: str, *,
              required: bool = False) -> T | None:
        value = self.text(key, required=required)
        if not self.has(key) or isinstance(self.raw.fields[key].value, list):
            return None
        try:
            return convert(value.strip())
        except (ValueError, InvalidOperation):
            self.error(key, f"'{key}' must be {what}, not '{value}'")
            return None

    def integer(self, key: str, minimum: int, *, required: bool = False,
                default: int | None = None) -> int | None:
        number = self.parse(key, int, "a whole number", required=required)
        if number is None:
            return default
        if number < minimum:
            self.error(key, f"'{key}' must be at least {minimum}, not {number}")
            return default
        return number

    def choice(self, key: str, choices: Iterable[str], default: str | None = None) -> str:
        options = tuple(choices)
        value = self.text(key, required=default is None, default=default or "")
        if self.has(key) and value not in options:
            self.error(key, f"'{key}' must be one of {', '.join(options)}, not '{value}'",
                       did_you_mean(value, options))
        return value


def _parse_moment(text: str) -> tuple[datetime, bool]:
    """A date (whole day) or a datetime, as an aware Asia/Shanghai datetime."""
    if len(text) == 10:
        return day_start(date.fromisoformat(text)), True
    return local(datetime.fromisoformat(text)), False


def _decimal(text: str) -> Decimal:
    value = Decimal(text)
    if not value.is_finite():
        raise ValueError(text)
    return value


def _window(r: _Reader) -> tuple[datetime | None, datetime | None]:
    what = "a date (YYYY-MM-DD) or a time (YYYY-MM-DD HH:MM:SS)"
    start = r.parse("window_start", _parse_moment, what, required=True)
    end = r.parse("window_end", _parse_moment, what, required=True)
    start_at = start[0] if start else None
    end_at = None
    if end:
        end_at = end[0] + timedelta(days=1) if end[1] else end[0]
    if start_at and end_at and end_at <= start_at:
        r.error("window_end", "the campaign window ends before it starts")
    return start_at, end_at


def _template(r: _Reader) -> CouponTemplate | None:
    has_days, has_rate = r.has("interest_free_days"), r.has("rate_discount")
    if has_days and has_rate:
        r.error("rate_discount",
                "a coupon is either 'interest_free_days' or 'rate_discount', not both")
        return None
    if has_days:
        days = r.integer("interest_free_days", 1)
        return CouponTemplate("interest_free_days", days) if days is not None else None
    if has_rate:
        rate = r.parse("rate_discount", _decimal, "a decimal number")
        if rate is None:
            return None
        if not Decimal(0) < rate < Decimal(1):
            r.error("rate_discount", f"'rate_discount' must lie strictly between 0 and 1, "
                    f"not {rate}")
            return None
        return CouponTemplate("rate_discount", rate)
    r.error("name", "campaign has no coupon template: give 'interest_free_days' N or "
            "'rate_discount' x (0 < x < 1)")
    return None


def _validity(r: _Reader, window_end: datetime | None) -> Validity | None:
    fixed = [k for k in ("validity_from", "validity_to") if r.has(k)]
    dynamic = [k for k in ("validity_starts_after_days", "validity_days") if r.has(k)]
    if fixed and dynamic:
        r.error(dynamic[0], "validity is either fixed ('validity_from'/'validity_to') or "
                "dynamic ('validity_starts_after_days'/'validity_days'), not both")
        return None
    if fixed:
        start = r.parse("validity_from", date.fromisoformat, "a date (YYYY-MM-DD)",
                        required=True)
        end = r.parse("validity_to", date.fromisoformat, "a date (YYYY-MM-DD)", required=True)
        if start is None or end is None:
            return None
        if end < start:
            r.error("validity_to", f"validity ends ({end}) before it starts ({start})")
            return None
        if window_end is not None and day_start(end + timedelta(days=1)) < window_end:
            r.error("validity_to", f"validity ends ({end}) before the campaign window does")
            return None
        return Validity(fixed_from=start, fixed_to=end)
    if dynamic:
        after = r.integer("validity_starts_after_days", 0, default=0)
        if not r.has("validity_days"):
            r.error("validity_starts_after_days", "dynamic validity needs 'validity_days'")
            return None
        days = r.integer("validity_days", 1)
        return Validity(starts_after_days=after, days=days) if days is not None else None
    r.error("name", "campaign has no validity: give 'validity_from' and 'validity_to', or "
            "'validity_starts_after_days' and 'validity_days'")
    return None


def _channels(r: _Reader) -> frozenset[str]:
    if not r.has("channels"):
        return frozenset(CHANNELS)
    value: RawValue = r.raw.fields["channels"].value
    items = [value] if isinstance(value, str) else value
    if [i.lower() for i in items] == ["all"]:
        return frozenset(CHANNELS)
    bad = [i for i in items if i not in CHANNELS]
    for item in bad:
        r.error("channels", f"unknown channel '{item}' (channels: {', '.join(CHANNELS)} or all)",
                did_you_mean(item, CHANNELS))
    if not items:
        r.error("channels", "'channels' is empty; give channels or 'all'")
    return frozenset(i for i in items if i in CHANNELS)


def campaign_from_raw(raw: RawCampaign) -> Campaign:
    """Validate raw fields into a :class:`Campaign`, reporting every problem at once."""
    r = _Reader(raw)
    name = r.text("name", required=True)
    if name and not _NAME.match(name):
        r.error("name", f"campaign name '{name}' must be snake_case (a-z, 0-9, _)")
    target = r.text("target_segment", required=True)
    if target and not _NAME.match(target):
        r.error("target_segment", f"segment name '{target}' must be snake_case")
    owner = r.text("owner") or None
    if owner and not _OWNER.match(owner):
        r.error("owner", f"owner must look like 'team:<dept>', not '{owner}'")
    kind = r.choice("type", CAMPAIGN_TYPES)
    window_start, window_end = _window(r)
    template = _template(r)
    validity = _validity(r, window_end)
    stock = r.integer("total_stock", 1, required=True)
    daily = r.integer("daily_limit", 1)
    per_customer = r.integer("per_customer_limit", 1, default=1)
    lease = r.integer("lease_seconds", 1, default=DEFAULT_LEASE_SECONDS)
    stacking = r.choice("stacking", STACKING, default="exclusive")
    on_failed = r.choice("on_failed_drawdown", ON_FAILED_DRAWDOWN, default="void")
    channels = _channels(r)
    raise_collected(r.errors)
    assert window_start and window_end and template and validity and stock
    return Campaign(
        name=name, type=kind, target_segment=target, window_start=window_start,
        window_end=window_end, template=template, validity=validity, total_stock=stock,
        daily_limit=daily, per_customer_limit=per_customer or 1, stacking=stacking,
        on_failed_drawdown=on_failed, channels=channels, title=r.text("title"),
        rules=r.text("rules"), owner=owner, lease_seconds=lease or DEFAULT_LEASE_SECONDS,
        path=raw.path, definition_hash=hashlib.sha256(raw.text.encode()).hexdigest()[:16],
        locations={key: item.value_location for key, item in raw.fields.items()},
    )


def load_campaign(path: Path) -> Campaign:
    """Read and validate one campaign file (``.yaml``, ``.yml`` or ``.sql``)."""
    return campaign_from_raw(read_raw(path, set(KEYS)))


def campaign_files(folder: Path) -> list[Path]:
    """Campaign definition files under ``folder`` (recursively), sorted; none if absent."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def load_campaigns(paths: Path | Iterable[Path]) -> dict[str, Campaign]:
    """Load every campaign in a folder (or the given files), by name.

    Every bad file and every duplicate name is reported together (collect, then raise).
    """
    files = campaign_files(paths) if isinstance(paths, Path) and paths.is_dir() else (
        [paths] if isinstance(paths, Path) else list(paths))
    campaigns: dict[str, Campaign] = {}
    errors: list[KequnError] = []
    for path in files:
        try:
            campaign = load_campaign(path)
        except KequnError as exc:
            errors.append(exc)
            continue
        if campaign.name in campaigns:
            first = campaigns[campaign.name].path
            errors.append(ValidationError(
                f"campaign '{campaign.name}' is also defined in {first}",
                campaign.location("name")))
            continue
        campaigns[campaign.name] = campaign
    raise_collected(errors)
    return campaigns


def get_campaign(campaigns: Mapping[str, Campaign], name: str) -> Campaign:
    """The campaign called ``name``, or a ValidationError with a "did you mean".

    The error names the campaigns' folder when the campaigns came from files.
    """
    if name not in campaigns:
        folders = {c.path.parent for c in campaigns.values() if c.path is not None}
        where = Location(folders.pop()) if len(folders) == 1 else Location()
        raise ValidationError(f"unknown campaign '{name}'", where,
                              hint=did_you_mean(name, campaigns))
    return campaigns[name]
