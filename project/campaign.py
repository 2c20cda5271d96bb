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
rate_discount              coupon template: multiply the interest by 0 < x < 1, or
amount_off                 coupon template: yuan off the interest (period 1, then 2...)
validity_from, validity_to fixed validity (dates, inclusive), or
validity_starts_after_days dynamic validity: starts X days after issue ...
validity_days              ... and lasts Y days
total_stock                coupons the campaign may ever issue
daily_limit                coupons per Asia/Shanghai day (default: no daily cap)
per_customer_limit         coupons one customer may receive (default 1)
stacking                   ``exclusive`` (default) or ``stackable``
on_failed_drawdown         ``void`` (default) or ``restore``
lease_seconds              default occupation lease (default 900)
batch_offer                ``true`` (default): a daily batch offer to every eligible
                           customer; ``false``: issued only by rules (``issue_coupon``)
activity_scope             which loans may use it: ``all`` (default), ``first_drawdown``
                           (首次用信), ``first_drawdown_in_window``, ``drawdown``
                           (a repeat drawdown, 普通用信), ``credit_granted`` (credit
                           granted in the campaign window)
asset_parties              asset parties (资产方) the loan may have (default ``all``)
funding_parties            funding parties (资金方) the loan may have (default ``all``)
customer_types             ``NORMAL``, ``STAFF``, ``H5_REFERRAL``, ``OFFLINE`` or ``all``
credit_methods             ``PRE_APPROVED``, ``SELF_APPLIED`` or ``all``
max_principal, max_term,   the largest loan the coupon may be used on (defaults 200000
max_rate                   yuan, 36 months, 0.24); they bound its worst-case cost
budget                     yuan the campaign may cost (reserved + booked); default none
expected_use_rate          share of issued coupons expected to be used (default 0.3),
                           for ``kequn campaigns plan``
========================== =====================================================

Times are Asia/Shanghai. Every problem found in a file is reported together, each
as ``file:line:col: message``. Whether the target segment exists, is synced and is shared
with the campaign's owner is checked with the other definitions
(:mod:`project.references`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from pathlib import Path

from kequn.days import day_start, local
from kequn.errors import KequnError, Location, ValidationError, did_you_mean
from kequn.header import DefinitionFile, HeaderField
from project import fields as f
from project.trial import Coupon as TrialCoupon
from project.trial import LoanBounds, max_reduction

CAMPAIGN_TYPES = ("wake_up", "credit", "drawdown")
CHANNELS = ("APP", "MINI_PROGRAM", "H5")
STACKING = ("exclusive", "stackable")
ACTIVITY_SCOPES = ("all", "first_drawdown", "first_drawdown_in_window", "drawdown",
                   "credit_granted")
CUSTOMER_TYPES = ("NORMAL", "STAFF", "H5_REFERRAL", "OFFLINE")
CREDIT_METHODS = ("PRE_APPROVED", "SELF_APPLIED")
DEFAULT_BOUNDS = LoanBounds(Decimal("200000"), 36, Decimal("0.24"))
DEFAULT_EXPECTED_USE_RATE = Decimal("0.3")
ON_FAILED_DRAWDOWN = ("void", "restore")
SUFFIXES = (".yaml", ".yml", ".sql")
DEFAULT_LEASE_SECONDS = 900

SAMPLE = """\
CAMPAIGN (
  name wake_up_30d,
  rules '30 days interest-free for dormant customers',
  type wake_up,
  target_segment wake_up,
  window_start 2026-01-01,
  window_end 2026-03-31,
  interest_free_days 30,
  validity_starts_after_days 0,
  validity_days 30,
  total_stock 100000,
  daily_limit 5000,
  per_customer_limit 1,
);"""


def _channels(item: HeaderField) -> frozenset[str]:
    values = f.items(item)
    if [v.lower() for v in values] == ["all"]:
        return frozenset(CHANNELS)
    if not values:
        raise ValidationError("'channels' is empty; give channels or 'all'", item.value_location)
    for value in values:
        if value not in CHANNELS:
            raise ValidationError(f"unknown channel '{value}' (channels: {', '.join(CHANNELS)} "
                                  "or all)", item.value_location,
                                  hint=did_you_mean(value, CHANNELS))
    return frozenset(values)


def _members(allowed: tuple[str, ...] | None) -> f.Reader:
    """A list of values (any names when ``allowed`` is None), or ``all`` (read as None)."""
    def read(item: HeaderField) -> frozenset[str] | None:
        values = f.items(item)
        if [v.lower() for v in values] == ["all"]:
            return None
        if not values or any(not v.strip() for v in values):
            raise ValidationError(f"'{item.key}' is empty; give values or 'all'",
                                  item.value_location)
        for value in values:
            if allowed is not None and value not in allowed:
                raise ValidationError(
                    f"unknown {item.key} value '{value}' ({', '.join(allowed)} or all)",
                    item.value_location, hint=did_you_mean(value, allowed))
        return frozenset(values)
    return read


def _amount(item: HeaderField) -> Decimal:
    value = f.decimal(item)
    if value <= 0 or value != value.quantize(Decimal("0.01")):
        raise ValidationError(f"'{item.key}' must be a positive amount in yuan (at most two "
                              f"decimals), not {value}", item.value_location)
    return value


def _fraction(item: HeaderField) -> Decimal:
    value = f.decimal(item)
    if not Decimal(0) <= value <= Decimal(1):
        raise ValidationError(f"'{item.key}' must lie between 0 and 1, not {value}",
                              item.value_location)
    return value


def _annual_rate(item: HeaderField) -> Decimal:
    value = f.decimal(item)
    if not Decimal(0) < value < Decimal(10):
        raise ValidationError(f"'{item.key}' must be an annual rate such as 0.24, not {value}",
                              item.value_location)
    return value


def _rate(item: HeaderField) -> Decimal:
    rate = f.decimal(item)
    if not Decimal(0) < rate < Decimal(1):
        raise ValidationError(f"'rate_discount' must lie strictly between 0 and 1, not {rate}",
                              item.value_location)
    return rate


FIELDS: tuple[f.Field, ...] = (
    f.Field("name", f.name("campaign"), required=True),
    f.Field("title", f.text, default=""),
    f.Field("rules", f.text, default=""),
    f.Field("owner", f.team),
    f.Field("type", f.choice(CAMPAIGN_TYPES), required=True),
    f.Field("target_segment", f.name("segment"), required=True),
    f.Field("channels", _channels, default=frozenset(CHANNELS)),
    f.Field("window_start", f.moment(), required=True),
    f.Field("window_end", f.moment(end=True), required=True),
    f.Field("interest_free_days", f.integer(minimum=1)),
    f.Field("rate_discount", _rate),
    f.Field("amount_off", _amount),
    f.Field("validity_from", f.day),
    f.Field("validity_to", f.day),
    f.Field("validity_starts_after_days", f.integer(minimum=0)),
    f.Field("validity_days", f.integer(minimum=1)),
    f.Field("total_stock", f.integer(minimum=1), required=True),
    f.Field("daily_limit", f.integer(minimum=1)),
    f.Field("per_customer_limit", f.integer(minimum=1), default=1),
    f.Field("stacking", f.choice(STACKING), default="exclusive"),
    f.Field("on_failed_drawdown", f.choice(ON_FAILED_DRAWDOWN), default="void"),
    f.Field("lease_seconds", f.integer(minimum=1), default=DEFAULT_LEASE_SECONDS),
    f.Field("batch_offer", f.switch, default=True,
            help="false: no daily batch offer; coupons come from rules only"),
    f.Field("activity_scope", f.choice(ACTIVITY_SCOPES), default="all"),
    f.Field("asset_parties", _members(None)),
    f.Field("funding_parties", _members(None)),
    f.Field("customer_types", _members(CUSTOMER_TYPES)),
    f.Field("credit_methods", _members(CREDIT_METHODS)),
    f.Field("max_principal", _amount, default=DEFAULT_BOUNDS.max_principal),
    f.Field("max_term", f.integer(minimum=1), default=DEFAULT_BOUNDS.max_term),
    f.Field("max_rate", _annual_rate, default=DEFAULT_BOUNDS.max_rate),
    f.Field("budget", _amount),
    f.Field("expected_use_rate", _fraction, default=DEFAULT_EXPECTED_USE_RATE),
)


@dataclass(frozen=True)
class CouponTemplate:
    """What the coupon gives: ``interest_free_days`` (int N), ``rate_discount`` (0<x<1)
    or ``amount_off`` (yuan)."""

    kind: str
    value: int | Decimal

    def describe(self) -> str:
        """A short human description, e.g. ``30 interest-free days``."""
        return self.coupon.describe()

    @property
    def coupon(self) -> TrialCoupon:
        """The template as the trial calculation applies it."""
        return TrialCoupon(self.kind, Decimal(self.value))


@dataclass(frozen=True)
class LoanScope:
    """Where a coupon applies at loan time (网贷配置); ``None`` means any value."""

    activity: str = "all"
    asset_parties: frozenset[str] | None = None
    funding_parties: frozenset[str] | None = None
    customer_types: frozenset[str] | None = None
    credit_methods: frozenset[str] | None = None

    def describe(self) -> str:
        """``activity first_drawdown; asset_parties KQ_SELF; ...`` (``any`` when open)."""
        parts = [f"activity {self.activity}"]
        for key in ("asset_parties", "funding_parties", "customer_types", "credit_methods"):
            values = getattr(self, key)
            parts.append(f"{key} {','.join(sorted(values)) if values else 'all'}")
        return "; ".join(parts)


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
    scope: LoanScope = LoanScope()
    bounds: LoanBounds = DEFAULT_BOUNDS
    budget: Decimal | None = None
    expected_use_rate: Decimal = DEFAULT_EXPECTED_USE_RATE
    path: Path | None = None
    definition_hash: str = ""
    locations: dict[str, Location] = field(default_factory=dict, compare=False, repr=False)
    batch_offer: bool = True
    """Whether the campaign has a daily batch offer (False: rules issue its coupons)."""

    @property
    def exclusive(self) -> bool:
        return self.stacking == "exclusive"

    @property
    def effective_daily_limit(self) -> int:
        """The daily cap actually enforced (the total stock when none is set)."""
        return self.daily_limit if self.daily_limit is not None else self.total_stock

    @cached_property
    def max_reduction(self) -> Decimal:
        """The most one coupon can take off a loan within the campaign's bounds (yuan);
        what issuing it reserves from the budget."""
        return max_reduction(self.template.coupon, self.bounds)

    def in_window(self, when: datetime) -> bool:
        """Whether ``when`` lies in ``[window_start, window_end)``."""
        return self.window_start <= local(when) < self.window_end

    def location(self, key: str) -> Location:
        """Where ``key`` is defined in the campaign's file (or the file itself)."""
        return self.locations.get(key) or Location(self.path)


def build_campaign(d: DefinitionFile, values: f.Values, errors: list[KequnError],
                   root: Path) -> Campaign | None:
    """Turn one parsed campaign file into a Campaign; every problem goes to ``errors``."""
    before = len(errors)
    start, end = values["window_start"], values["window_end"]
    if start and end and end <= start:
        errors.append(ValidationError("the campaign window ends before it starts",
                                      d.location("window_end")))
    template = _template(d, values, errors)
    validity = _validity(d, values, end, errors)
    if len(errors) > before or values.failed or template is None or validity is None:
        return None
    return Campaign(
        name=values["name"], type=values["type"], target_segment=values["target_segment"],
        window_start=start, window_end=end, template=template, validity=validity,
        total_stock=values["total_stock"], daily_limit=values["daily_limit"],
        per_customer_limit=values["per_customer_limit"], stacking=values["stacking"],
        on_failed_drawdown=values["on_failed_drawdown"], channels=values["channels"],
        title=values["title"], rules=values["rules"], owner=values["owner"],
        lease_seconds=values["lease_seconds"], path=d.path,
        scope=LoanScope(values["activity_scope"], values["asset_parties"],
                        values["funding_parties"], values["customer_types"],
                        values["credit_methods"]),
        bounds=LoanBounds(values["max_principal"], values["max_term"], values["max_rate"]),
        budget=values["budget"], expected_use_rate=values["expected_use_rate"],
        definition_hash=hashlib.sha256(d.text.encode()).hexdigest()[:16],
        locations={key: item.value_location for key, item in d.fields.items()},
        batch_offer=values["batch_offer"],
    )


def _template(d: DefinitionFile, values: f.Values,
              errors: list[KequnError]) -> CouponTemplate | None:
    given = [k for k in ("interest_free_days", "rate_discount", "amount_off") if values.given(k)]
    if len(given) > 1:
        errors.append(ValidationError(
            "a coupon is one of 'interest_free_days', 'rate_discount' or 'amount_off', not "
            f"{' and '.join(repr(k) for k in given)}", d.location(given[1])))
        return None
    has_days, has_rate = values.given("interest_free_days"), values.given("rate_discount")
    if values.given("amount_off"):
        amount = values["amount_off"]
        return CouponTemplate("amount_off", amount) if amount is not None else None
    if has_days:
        days = values["interest_free_days"]
        return CouponTemplate("interest_free_days", days) if days is not None else None
    if has_rate:
        rate = values["rate_discount"]
        return CouponTemplate("rate_discount", rate) if rate is not None else None
    errors.append(ValidationError(
        "campaign has no coupon template: give 'interest_free_days' N, 'rate_discount' x "
        "(0 < x < 1) or 'amount_off' A (yuan)", d.location("name")))
    return None


def _validity(d: DefinitionFile, values: f.Values, window_end: datetime | None,
              errors: list[KequnError]) -> Validity | None:
    fixed = [k for k in ("validity_from", "validity_to") if values.given(k)]
    dynamic = [k for k in ("validity_starts_after_days", "validity_days") if values.given(k)]
    if fixed and dynamic:
        errors.append(ValidationError(
            "validity is either fixed ('validity_from'/'validity_to') or dynamic "
            "('validity_starts_after_days'/'validity_days'), not both", d.location(dynamic[0])))
        return None
    if fixed:
        missing = [k for k in ("validity_from", "validity_to") if not values.given(k)]
        if missing:
            errors.append(ValidationError(f"fixed validity needs '{missing[0]}'",
                                          d.location(fixed[0])))
            return None
        start, end = values["validity_from"], values["validity_to"]
        if start is None or end is None:
            return None
        if end < start:
            errors.append(ValidationError(f"validity ends ({end}) before it starts ({start})",
                                          d.location("validity_to")))
            return None
        if window_end is not None and day_start(end + timedelta(days=1)) < window_end:
            errors.append(ValidationError(
                f"validity ends ({end}) before the campaign window does",
                d.location("validity_to")))
            return None
        return Validity(fixed_from=start, fixed_to=end)
    if dynamic:
        if not values.given("validity_days"):
            errors.append(ValidationError("dynamic validity needs 'validity_days'",
                                          d.location("validity_starts_after_days")))
            return None
        days = values["validity_days"]
        after = values["validity_starts_after_days"] or 0
        return Validity(starts_after_days=after, days=days) if days is not None else None
    errors.append(ValidationError(
        "campaign has no validity: give 'validity_from' and 'validity_to', or "
        "'validity_starts_after_days' and 'validity_days'", d.location("name")))
    return None


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
