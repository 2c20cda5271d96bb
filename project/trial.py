"""Loan trial calculation (借款试算): the repayment plan and a coupon's reduction per period.

This is the core system's contract (DESIGN §12), pure decimal arithmetic:

* A loan is a principal ``P``, an annual rate ``R``, ``N`` monthly periods, a method and a
  disbursement day ``S``. Period k is due on ``S`` plus k months (the day clamped to the
  month's end); the monthly rate is ``r = R / 12`` (kept unrounded).
* ``equal_installment`` (等额本息): the payment ``A = P·r·(1+r)^N / ((1+r)^N − 1)`` rounded
  to the cent (``P / N`` when ``r = 0``); ``interest_k = outstanding·r``; ``principal_k =
  A − interest_k``; the last period takes what is left, so the principals sum to ``P``.
* ``equal_principal`` (等额本金): ``principal_k = P / N`` rounded to the cent, the last period
  takes the remainder; ``interest_k = outstanding·r``.
* Every amount is rounded half-up to the cent per period (``ROUND_HALF_UP``).
* Reductions apply to interest only and never below zero:
  ``interest_free_days D``: period k has ``d_k`` days (from the previous due day, or ``S``),
  ``f_k`` of them among the first ``D`` days from ``S``; ``reduction_k = interest_k·f_k/d_k``.
  ``rate_discount x`` (pay ``x`` of the interest): ``reduction_k = interest_k·(1 − x)`` in the
  coupon's periods (all unless ``periods`` is set).
  ``amount_off A``: taken from the interest of period 1, then 2, ... until ``A`` is used.
  Several (stackable) coupons apply in order, each to the interest the previous left.

>>> from datetime import date
>>> plan = repayment_plan(Loan(Decimal("12000"), Decimal("0.12"), 12, "equal_principal",
...                            date(2026, 1, 31)), [Coupon("amount_off", Decimal("200"))])
>>> [str(p.reduction) for p in plan.periods[:3]], str(plan.total_reduction)
(['120.00', '80.00', '0.00'], '200.00')
>>> plan.periods[0].due, plan.periods[1].due
(datetime.date(2026, 2, 28), datetime.date(2026, 3, 31))
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal, localcontext
from typing import Any

METHODS = ("equal_installment", "equal_principal")
TEMPLATE_KINDS = ("interest_free_days", "rate_discount", "amount_off")
CENT = Decimal("0.01")
ZERO = Decimal("0.00")
_PRECISION = 60


def cents(amount: Decimal) -> Decimal:
    """``amount`` rounded half-up to the cent.

    >>> str(cents(Decimal("10.005"))), str(cents(Decimal("10.0049")))
    ('10.01', '10.00')
    """
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months, the day clamped to the month's end.

    >>> add_months(date(2026, 1, 31), 1), add_months(date(2024, 1, 31), 1)
    (datetime.date(2026, 2, 28), datetime.date(2024, 2, 29))
    """
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


@dataclass(frozen=True)
class Loan:
    """The loan being tried: principal (yuan), annual rate (0.12 = 12%), term in months,
    method and disbursement day."""

    principal: Decimal
    annual_rate: Decimal
    term: int
    method: str
    start: date

    def problem(self) -> str | None:
        """Why this loan cannot be computed, or None."""
        if self.method not in METHODS:
            return f"method must be one of {', '.join(METHODS)}, not '{self.method}'"
        if not self.principal.is_finite() or self.principal <= 0:
            return f"principal must be positive, not {self.principal}"
        if cents(self.principal) != self.principal:
            return f"principal has more than two decimals: {self.principal}"
        if not self.annual_rate.is_finite() or not 0 <= self.annual_rate < 10:
            return f"annual rate must be a fraction such as 0.12, not {self.annual_rate}"
        if not 1 <= self.term <= 600:
            return f"term must be 1 to 600 months, not {self.term}"
        return None


@dataclass(frozen=True)
class Coupon:
    """What a coupon takes off: ``interest_free_days`` (int days), ``rate_discount`` (pay
    ``value`` of the interest, 0 < value < 1, in the first ``periods`` periods or all) or
    ``amount_off`` (yuan)."""

    kind: str
    value: Decimal
    periods: int | None = None

    def problem(self) -> str | None:
        """Why this coupon cannot be applied, or None."""
        if self.kind not in TEMPLATE_KINDS:
            return f"coupon type must be one of {', '.join(TEMPLATE_KINDS)}, not '{self.kind}'"
        if self.kind == "interest_free_days" and (self.value != int(self.value)
                                                  or self.value < 0):
            return f"interest_free_days must be a whole number of days, not {self.value}"
        if self.kind == "rate_discount" and not 0 <= self.value <= 1:
            return f"rate_discount must lie between 0 and 1, not {self.value}"
        if self.kind == "amount_off" and (self.value < 0 or cents(self.value) != self.value):
            return f"amount_off must be a non-negative amount in cents, not {self.value}"
        return None

    def describe(self) -> str:
        """``30 interest-free days``, ``interest x 0.8``, ``200.00 off the interest``."""
        if self.kind == "interest_free_days":
            return f"{int(self.value)} interest-free days"
        if self.kind == "rate_discount":
            scope = f" for {self.periods} period(s)" if self.periods else ""
            return f"interest x {self.value}{scope}"
        return f"{cents(self.value)} off the interest"


@dataclass(frozen=True)
class Period:
    """One installment: due day, days in the period, and its amounts (yuan, to the cent)."""

    no: int
    due: date
    days: int
    principal: Decimal
    interest: Decimal
    reduction: Decimal

    @property
    def payable(self) -> Decimal:
        """What the customer pays: principal + interest − reduction."""
        return self.principal + self.interest - self.reduction

    def to_dict(self) -> dict[str, Any]:
        return {"no": self.no, "due": self.due.isoformat(), "days": self.days,
                "principal": str(self.principal), "interest": str(self.interest),
                "reduction": str(self.reduction), "payable": str(self.payable)}


@dataclass(frozen=True)
class RepaymentPlan:
    """The repayment plan of a loan with the coupons applied (in order)."""

    loan: Loan
    coupons: tuple[Coupon, ...]
    periods: tuple[Period, ...] = field(default_factory=tuple)

    @property
    def total_principal(self) -> Decimal:
        return sum((p.principal for p in self.periods), ZERO)

    @property
    def total_interest(self) -> Decimal:
        return sum((p.interest for p in self.periods), ZERO)

    @property
    def total_reduction(self) -> Decimal:
        return sum((p.reduction for p in self.periods), ZERO)

    @property
    def total_payable(self) -> Decimal:
        return sum((p.payable for p in self.periods), ZERO)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (amounts as strings, exact)."""
        loan = self.loan
        return {
            "loan": {"principal": str(loan.principal), "annual_rate": str(loan.annual_rate),
                     "term": loan.term, "method": loan.method, "start": loan.start.isoformat()},
            "coupons": [{"kind": c.kind, "value": str(c.value), "periods": c.periods}
                        for c in self.coupons],
            "periods": [p.to_dict() for p in self.periods],
            "totals": {"principal": str(self.total_principal),
                       "interest": str(self.total_interest),
                       "reduction": str(self.total_reduction),
                       "payable": str(self.total_payable)},
        }


class TrialError(ValueError):
    """A loan or coupon the trial cannot compute (the message says which value)."""


def _schedule(loan: Loan) -> list[tuple[date, int, Decimal, Decimal]]:
    """(due, days, principal, interest) per period, before any coupon."""
    problem = loan.problem()
    if problem:
        raise TrialError(problem)
    p, n = loan.principal, loan.term
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        r = loan.annual_rate / 12
        if loan.method == "equal_installment":
            if r == 0:
                payment = cents(p / n)
            else:
                growth = (1 + r) ** n
                payment = cents(p * r * growth / (growth - 1))
        else:
            payment = cents(p / n)  # the principal part of each period
        rows = []
        outstanding = p
        previous = loan.start
        for k in range(1, n + 1):
            due = add_months(loan.start, k)
            interest = cents(outstanding * r)
            if k == n:
                principal = outstanding
            elif loan.method == "equal_installment":
                principal = min(max(payment - interest, ZERO), outstanding)
            else:
                principal = min(payment, outstanding)
            rows.append((due, (due - previous).days, principal, interest))
            outstanding -= principal
            previous = due
    return rows


def _reductions(coupon: Coupon, loan: Loan, rows: Sequence[tuple[date, int, Decimal, Decimal]],
                left: list[Decimal]) -> list[Decimal]:
    """The coupon's reduction per period, each at most the interest ``left`` there."""
    problem = coupon.problem()
    if problem:
        raise TrialError(problem)
    out: list[Decimal] = []
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        if coupon.kind == "interest_free_days":
            free_end = loan.start + timedelta(days=int(coupon.value))
            previous = loan.start
            for (due, days, _, interest), room in zip(rows, left, strict=True):
                free = max((min(due, free_end) - max(previous, loan.start)).days, 0)
                out.append(min(cents(interest * free / days), room) if days else ZERO)
                previous = due
        elif coupon.kind == "rate_discount":
            for k, ((_, _, _, interest), room) in enumerate(zip(rows, left, strict=True), 1):
                applies = coupon.periods is None or k <= coupon.periods
                out.append(min(cents(interest * (1 - coupon.value)), room) if applies else ZERO)
        else:
            remaining = cents(coupon.value)
            for room in left:
                take = min(room, remaining)
                out.append(take)
                remaining -= take
    return out


def repayment_plan(loan: Loan, coupons: Sequence[Coupon] = ()) -> RepaymentPlan:
    """The loan's plan per period (due day, principal, interest, reduction, payable).

    Raises :class:`TrialError` for a loan or coupon that cannot be computed.
    """
    rows = _schedule(loan)
    left = [interest for *_, interest in rows]
    total = [ZERO] * len(rows)
    for coupon in coupons:
        taken = _reductions(coupon, loan, rows, left)
        left = [room - t for room, t in zip(left, taken, strict=True)]
        total = [a + t for a, t in zip(total, taken, strict=True)]
    periods = tuple(Period(k, due, days, principal, interest, reduction)
                    for k, ((due, days, principal, interest), reduction)
                    in enumerate(zip(rows, total, strict=True), 1))
    return RepaymentPlan(loan, tuple(coupons), periods)


@dataclass(frozen=True)
class LoanBounds:
    """The largest loan a campaign's coupon may be used on (checked when it is occupied)."""

    max_principal: Decimal
    max_term: int
    max_rate: Decimal

    def problem(self, loan: Loan) -> str | None:
        """Which bound ``loan`` exceeds, or None."""
        if loan.principal > self.max_principal:
            return f"principal {loan.principal} exceeds {self.max_principal}"
        if loan.term > self.max_term:
            return f"term {loan.term} exceeds {self.max_term}"
        if loan.annual_rate > self.max_rate:
            return f"annual rate {loan.annual_rate} exceeds {self.max_rate}"
        return None


def max_reduction(coupon: Coupon, bounds: LoanBounds) -> Decimal:
    """An upper bound of the coupon's reduction on any loan within ``bounds``.

    Interest is never more than ``P·r`` per period (the outstanding never exceeds the
    principal), and a period has at least 28 days, so ``interest_free_days D`` takes at
    most ``P·r·D/28`` (and at most the whole interest); a rate discount takes at most
    ``(1 − x)`` of the largest total interest (the plan at the bounds, either method; the
    interest grows with principal, rate and term); ``amount_off A`` at most ``A``. One cent
    per period covers the rounding. What issuing a coupon reserves from the budget.

    >>> bounds = LoanBounds(Decimal("10000"), 12, Decimal("0.24"))
    >>> str(max_reduction(Coupon("amount_off", Decimal("50")), bounds))
    '50.00'
    """
    problem = coupon.problem()
    if problem:
        raise TrialError(problem)
    n = bounds.max_term
    slack = CENT * n
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        worst = [repayment_plan(Loan(bounds.max_principal, bounds.max_rate, n, method,
                                     date(2001, 1, 31)))
                 for method in METHODS]
        interest = max(p.total_interest for p in worst) + slack
        if coupon.kind == "amount_off":
            bound = min(cents(coupon.value), interest)
        elif coupon.kind == "rate_discount":
            periods = min(coupon.periods or n, n)
            share = max(sum((q.interest for q in p.periods[:periods]), ZERO) for p in worst)
            bound = min(share * (1 - coupon.value) + CENT * periods, interest)
        else:
            per_period = bounds.max_principal * bounds.max_rate / 12
            bound = min(per_period * coupon.value / 28 + slack, interest)
    return bound.quantize(CENT, rounding=ROUND_CEILING)
