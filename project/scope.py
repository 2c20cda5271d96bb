"""Loan-time scope (网贷配置): whether a campaign's coupon may be used on a given loan.

The loan system sends a :class:`LoanContext` with each occupy (and ``coupons usable``):
channel, asset party, funding party, whether the loan is the customer's first drawdown
overall and within the campaign window, whether the credit was granted within the
campaign window, customer type, credit method, and optionally the loan's terms
(principal, rate, term, method, day) for the trial reduction and the campaign's bounds,
and the loan's id (so the coupons it already holds are taken into account).
:func:`scope_refusal` answers with the first field out of scope, as a reason code, in a
fixed order (so a loan that breaks several always gets the same answer).

``activity_scope`` reads: ``all`` any loan; ``first_drawdown`` the customer's first
drawdown ever (首次用信); ``first_drawdown_in_window`` the first drawdown within the
campaign window; ``drawdown`` a repeat drawdown (普通用信, not the first); ``credit_granted``
a drawdown on credit granted within the campaign window. A context that does not say
(``None``) is out of scope for a campaign that needs to know.

>>> from project.campaign import LoanScope
>>> scope = LoanScope("first_drawdown", customer_types=frozenset({"STAFF"}))
>>> scope_refusal(scope, LoanContext(first_drawdown=True, customer_type="NORMAL"))
'customer_type_out_of_scope'
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final

from project.trial import Loan

if TYPE_CHECKING:
    from project.campaign import LoanScope

CHANNEL_OUT_OF_SCOPE: Final = "channel_out_of_scope"
ACTIVITY_OUT_OF_SCOPE: Final = "activity_out_of_scope"
ASSET_PARTY_OUT_OF_SCOPE: Final = "asset_party_out_of_scope"
FUNDING_PARTY_OUT_OF_SCOPE: Final = "funding_party_out_of_scope"
CUSTOMER_TYPE_OUT_OF_SCOPE: Final = "customer_type_out_of_scope"
CREDIT_METHOD_OUT_OF_SCOPE: Final = "credit_method_out_of_scope"
LOAN_OUT_OF_BOUNDS: Final = "loan_out_of_bounds"

MESSAGES: Final[dict[str, str]] = {
    ACTIVITY_OUT_OF_SCOPE: "the coupon does not apply to this kind of drawdown",
    ASSET_PARTY_OUT_OF_SCOPE: "the coupon does not apply to this asset party",
    FUNDING_PARTY_OUT_OF_SCOPE: "the coupon does not apply to this funding party",
    CUSTOMER_TYPE_OUT_OF_SCOPE: "the coupon does not apply to this customer type",
    CREDIT_METHOD_OUT_OF_SCOPE: "the coupon does not apply to this credit method",
    LOAN_OUT_OF_BOUNDS: "the loan exceeds the campaign's bounds (principal, term or rate)",
}


class ContextError(ValueError):
    """A loan context that cannot be read (the message names the key and value)."""


@dataclass(frozen=True)
class LoanContext:
    """What the loan system knows about the loan at occupy time (None: not said)."""

    channel: str | None = None
    asset_party: str | None = None
    funding_party: str | None = None
    first_drawdown: bool | None = None
    first_drawdown_in_window: bool | None = None
    credit_granted_in_window: bool | None = None
    customer_type: str | None = None
    credit_method: str | None = None
    principal: Decimal | None = None
    annual_rate: Decimal | None = None
    term: int | None = None
    method: str = "equal_installment"
    start: date | None = None
    loan_id: str | None = None
    """The loan's id: ``coupons usable`` honours the coupons this loan already holds."""

    @property
    def loan(self) -> Loan | None:
        """The loan's terms for a trial, when principal, rate, term and day are given."""
        if None in (self.principal, self.annual_rate, self.term, self.start):
            return None
        assert self.principal is not None and self.annual_rate is not None
        assert self.term is not None and self.start is not None
        return Loan(self.principal, self.annual_rate, self.term, self.method, self.start)

    def fingerprint(self) -> str:
        """Canonical JSON of the given fields (what an idempotency key is checked against)."""
        given = {k: str(v) for k, v in asdict(self).items() if v is not None}
        return json.dumps(given, sort_keys=True)

    @classmethod
    def parse(cls, text: str) -> LoanContext:
        """``key=value,key=value`` or a JSON object, e.g.
        ``channel=APP,first_drawdown=true,principal=10000,annual_rate=0.18,term=12,start=2026-03-10``.

        >>> LoanContext.parse("channel=APP,first_drawdown=yes,term=12").term
        12
        """
        text = text.strip()
        if text.startswith("{"):
            try:
                raw: dict[str, Any] = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ContextError(f"loan context is not valid JSON: {exc.msg}") from None
        else:
            raw = {}
            for part in filter(None, (p.strip() for p in text.split(","))):
                key, sep, value = part.partition("=")
                if not sep:
                    raise ContextError(f"loan context item '{part}' is not key=value")
                raw[key.strip()] = value.strip()
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in known:
                raise ContextError(f"unknown loan context key '{key}' (keys: "
                                   f"{', '.join(known)})")
            values[key] = _read(key, value)
        return cls(**values)


_BOOLS = ("first_drawdown", "first_drawdown_in_window", "credit_granted_in_window")


def _read(key: str, value: Any) -> Any:
    text = str(value).strip()
    try:
        if key in _BOOLS:
            if text.lower() in ("true", "yes", "1", "on"):
                return True
            if text.lower() in ("false", "no", "0", "off"):
                return False
            raise ValueError("true or false")
        if key in ("principal", "annual_rate"):
            number = Decimal(text)
            if not number.is_finite():
                raise ValueError("a number")
            return number
        if key == "term":
            return int(text)
        if key == "start":
            return date.fromisoformat(text)
    except (ValueError, InvalidOperation) as exc:
        raise ContextError(f"loan context '{key}' has a bad value '{text}'"
                           f"{f' (expected {exc})' if str(exc) else ''}") from None
    return text


def _outside(allowed: frozenset[str] | None, value: str | None) -> bool:
    return allowed is not None and value not in allowed


def scope_refusal(scope: LoanScope, context: LoanContext) -> str | None:
    """The reason code of the first scope field ``context`` is outside of, or None."""
    activity = scope.activity
    flags = {"first_drawdown": context.first_drawdown,
             "first_drawdown_in_window": context.first_drawdown_in_window,
             "credit_granted": context.credit_granted_in_window,
             "drawdown": None if context.first_drawdown is None else not context.first_drawdown}
    if activity != "all" and flags[activity] is not True:
        return ACTIVITY_OUT_OF_SCOPE
    if _outside(scope.asset_parties, context.asset_party):
        return ASSET_PARTY_OUT_OF_SCOPE
    if _outside(scope.funding_parties, context.funding_party):
        return FUNDING_PARTY_OUT_OF_SCOPE
    if _outside(scope.customer_types, context.customer_type):
        return CUSTOMER_TYPE_OUT_OF_SCOPE
    if _outside(scope.credit_methods, context.credit_method):
        return CREDIT_METHOD_OUT_OF_SCOPE
    return None
