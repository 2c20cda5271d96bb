"""The credit life of a block of demo customers, simulated with numpy (no row loops).

Times are int64 seconds from the start of the history window (00:00 of its first
day, naive Asia/Shanghai); ``window_seconds`` is the exclusive end (00:00 of the day
after ``end_date``). Nothing at or after that end is emitted: an application still
undecided there is PENDING, a payment due to arrive later is not yet paid.
Money is int64 cents. Enumerations are small integer codes into the tuples of
:mod:`generate.schema` (and the party/city tuples below).

The story per customer: register somewhere in the window (more recently more
often); about half apply for credit, some twice after a rejection; most of the
approved draw one or more loans (a few drawdowns fail); each disbursed loan gets a
monthly schedule; a per-customer risk drives late payments and defaults, some loans
settle early, and a payment that would arrive after the end is left unpaid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generate.schema import CHANNELS, CREDIT_METHODS, TERMS

DAY = 86_400
HOUR = 3_600

CITIES = (
    "Shanghai", "Beijing", "Guangzhou", "Shenzhen", "Hangzhou", "Chengdu", "Chongqing",
    "Wuhan", "Xi'an", "Nanjing", "Suzhou", "Tianjin", "Changsha", "Zhengzhou", "Dongguan",
    "Qingdao", "Shenyang", "Ningbo", "Kunming", "Hefei",
)  # fmt: skip
_CITY_WEIGHTS = np.array([9, 8, 7, 7, 6, 6, 6, 5, 4, 5, 5, 4, 4, 4, 3, 3, 3, 3, 2, 3], float)
ASSET_PARTIES = ("KQ_SELF", "ZHONGCHENG_TRUST", "HUAAN_CONSUMER_FINANCE")
_ASSET_WEIGHTS = np.array([0.5, 0.3, 0.2])
FUNDING_PARTIES = ("SELF", "ICBC", "CMB", "BANK_OF_SHANGHAI", "WEBANK")
_FUNDING_WEIGHTS = np.array([0.3, 0.2, 0.2, 0.15, 0.15])

# Share of events per hour of the day (people sleep; lunch and evening peaks).
_HOUR_WEIGHTS = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 4, 5, 6, 6, 7, 6, 6, 6, 6, 6, 6, 7, 8, 8, 6, 3], float
)
_HOUR_P = _HOUR_WEIGHTS / _HOUR_WEIGHTS.sum()

# Behaviour knobs (tuned so that on the last day ~1/3 are granted, ~1/4 drawn, ~4% overdue).
P_APPLY = 0.5
P_PRE_APPROVED = 0.3
P_REAPPLY_AFTER_REJECTION = 0.35
P_IN_REVIEW = 0.25
REVIEW_DAYS = 14  # applications of the last two weeks may still wait for manual review
P_DRAW = 0.8
P_FAILED_DRAWDOWN = 0.06
P_EARLY_SETTLEMENT = 0.15
P_RECOVERY = 0.35
MAX_LOANS = 6


@dataclass
class Block:
    """Columns of the four tables for one block of customers (numpy arrays)."""

    customers: dict[str, np.ndarray]
    applications: dict[str, np.ndarray]
    loans: dict[str, np.ndarray]
    installments: dict[str, np.ndarray]
    seed: int


def _time_of_day(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.choice(24, size=n, p=_HOUR_P) * HOUR + rng.integers(0, HOUR, size=n)


def _exp_seconds(rng: np.random.Generator, mean: float, n: int) -> np.ndarray:
    return rng.exponential(mean, size=n).astype(np.int64)


def _group_starts(counts: np.ndarray) -> np.ndarray:
    starts = np.zeros(counts.size, dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return starts


def _rank_in_group(counts: np.ndarray) -> np.ndarray:
    """0, 1, ... within each run of ``counts`` consecutive rows."""
    total = int(counts.sum())
    return np.arange(total, dtype=np.int64) - np.repeat(_group_starts(counts), counts)


def _add_months(days: np.ndarray, months: np.ndarray) -> np.ndarray:
    """Calendar month arithmetic on datetime64[D], clipping to the month's last day.

    >>> _add_months(np.array(["2024-01-31"], dtype="datetime64[D]"), np.array([1]))
    array(['2024-02-29'], dtype='datetime64[D]')
    """
    month = days.astype("datetime64[M]")
    day_of_month = (days - month.astype("datetime64[D]")).astype(np.int64)
    target = month + months.astype("timedelta64[M]")
    length = ((target + 1).astype("datetime64[D]") - target.astype("datetime64[D]")).astype(
        np.int64
    )
    return target.astype("datetime64[D]") + np.minimum(day_of_month, length - 1)


def _customers(rng: np.random.Generator, first_id: int, n: int, days: int) -> dict:
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    # More registrations in recent months: a gently rising density over the window.
    reg_day = np.minimum((rng.beta(1.5, 1.0, size=n) * days).astype(np.int64), days - 1)
    registered = reg_day * DAY + _time_of_day(rng, n)
    channel = rng.choice(len(CHANNELS), size=n, p=[0.55, 0.2, 0.17, 0.08]).astype(np.int8)
    # customer_type: OFFLINE channel -> OFFLINE, half of H5 are referrals, 1% staff.
    ctype = np.zeros(n, dtype=np.int8)
    ctype[(channel == 2) & (rng.random(n) < 0.5)] = 2
    ctype[channel == 3] = 3
    ctype[rng.random(n) < 0.01] = 1
    city = rng.choice(len(CITIES), size=n, p=_CITY_WEIGHTS / _CITY_WEIGHTS.sum()).astype(np.int8)
    risk = rng.beta(2.0, 8.0, size=n)  # hidden: drives approvals, lateness and defaults
    return {
        "customer_id": ids,
        "registered": registered,
        "channel": channel,
        "customer_type": ctype,
        "city": city,
        "risk": risk,
    }


def _decide(
    rng: np.random.Generator, applied: np.ndarray, method: np.ndarray, risk: np.ndarray,
    base_pre: float, base_self: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Decision time and approval for applications (before the end-of-window cut)."""
    n = applied.size
    pre = method == 0
    quick = pre | (rng.random(n) < 0.7)
    delay = np.where(
        quick, 5 + _exp_seconds(rng, 120.0, n), HOUR + _exp_seconds(rng, 1.5 * DAY, n)
    )
    p_ok = np.where(pre, base_pre, base_self) - (risk - 0.2) * 1.2
    approved = rng.random(n) < p_ok
    return applied + delay, approved


def _applications(rng: np.random.Generator, cust: dict, end: int) -> tuple[dict, np.ndarray]:
    """Credit applications, and per customer the time credit was first granted (or -1)."""
    n = cust["customer_id"].size
    risk = cust["risk"]
    applies = rng.random(n) < np.where(cust["customer_type"] == 1, 0.9, P_APPLY)
    who1 = np.flatnonzero(applies)
    same_session = rng.random(who1.size) < 0.4
    delay1 = np.where(
        same_session, 60 + _exp_seconds(rng, 20 * 60.0, who1.size),
        HOUR + _exp_seconds(rng, 15 * DAY, who1.size),
    )
    applied1 = cust["registered"][who1] + delay1
    method1 = (rng.random(who1.size) >= P_PRE_APPROVED).astype(np.int8)
    decided1, approved1 = _decide(rng, applied1, method1, risk[who1], 0.88, 0.55)

    # Some rejected customers try again a while later (always self-applied).
    again = (~approved1) & (rng.random(who1.size) < P_REAPPLY_AFTER_REJECTION)
    who2 = who1[again]
    applied2 = decided1[again] + 7 * DAY + _exp_seconds(rng, 60 * DAY, who2.size)
    method2 = np.ones(who2.size, dtype=np.int8)
    decided2, approved2 = _decide(rng, applied2, method2, risk[who2], 0.88, 0.45)

    who = np.concatenate([who1, who2])
    applied = np.concatenate([applied1, applied2])
    decided = np.concatenate([decided1, decided2])
    approved = np.concatenate([approved1, approved2])
    method = np.concatenate([method1, method2])
    keep = applied < end
    who, applied, decided, approved, method = (
        a[keep] for a in (who, applied, decided, approved, method)
    )
    in_review = (applied >= end - REVIEW_DAYS * DAY) & (rng.random(who.size) < P_IN_REVIEW)
    pending = (decided >= end) | in_review
    decision = np.where(pending, 2, np.where(approved, 0, 1)).astype(np.int8)
    limit = (np.clip(rng.lognormal(np.log(12_000), 0.6, size=who.size), 2_000, 80_000) // 500)
    limit_cents = (limit * 500).astype(np.int64) * 100
    order = np.lexsort((applied, who))
    who, applied, decided, decision, method, limit_cents = (
        a[order] for a in (who, applied, decided, decision, method, limit_cents)
    )
    granted_rows = decision == 0
    # First grant per customer: rows are sorted by (customer, applied), so the first
    # approved row of a customer is its earliest grant.
    grant_time = np.full(n, -1, dtype=np.int64)
    grant_limit = np.zeros(n, dtype=np.int64)
    g_who, first = np.unique(who[granted_rows], return_index=True)
    grant_time[g_who] = decided[granted_rows][first]
    grant_limit[g_who] = limit_cents[granted_rows][first]
    apps = {
        "customer": who,
        "applied": applied,
        "decided": np.where(decision == 2, -1, decided),
        "decision": decision,
        "limit_cents": np.where(decision == 0, limit_cents, -1),
        "method": method,
    }
    return apps, np.stack([grant_time, grant_limit])


def _loans(rng: np.random.Generator, cust: dict, grant: np.ndarray, end: int) -> dict:
    """Drawdowns of granted customers: one or more, spaced out, a few failing."""
    grant_time, grant_limit = grant
    drawers = np.flatnonzero((grant_time >= 0) & (rng.random(grant_time.size) < P_DRAW))
    count = np.minimum(rng.geometric(0.5, size=drawers.size), MAX_LOANS)
    who = np.repeat(drawers, count)
    rank = _rank_in_group(count)
    m = who.size
    quick = rng.random(m) < 0.3
    first_gap = np.where(
        quick, 60 + _exp_seconds(rng, 30 * 60.0, m), HOUR + _exp_seconds(rng, 12 * DAY, m)
    )
    later_gap = 10 * DAY + _exp_seconds(rng, 75 * DAY, m)
    gap = np.where(rank == 0, first_gap, later_gap)
    offsets = np.cumsum(gap)
    offsets -= np.repeat(offsets[_group_starts(count)] - gap[_group_starts(count)], count)
    applied = grant_time[who] + offsets
    failed = rng.random(m) < P_FAILED_DRAWDOWN + cust["risk"][who] * 0.1
    disbursed = applied + 5 + _exp_seconds(rng, 90.0, m)
    keep = np.where(failed, applied, disbursed) < end
    limit = grant_limit[who]
    principal = (limit * rng.uniform(0.15, 1.0, size=m)) // 10_000 * 10_000
    principal = np.maximum(principal, 50_000).astype(np.int64)
    term = np.asarray(TERMS, dtype=np.int32)[rng.choice(3, size=m, p=[0.25, 0.35, 0.4])]
    channel = np.where(rng.random(m) < 0.8, cust["channel"][who], 0).astype(np.int8)
    asset = rng.choice(len(ASSET_PARTIES), size=m, p=_ASSET_WEIGHTS).astype(np.int8)
    funding = rng.choice(len(FUNDING_PARTIES), size=m, p=_FUNDING_WEIGHTS).astype(np.int8)
    return {
        "customer": who[keep],
        "applied": applied[keep],
        "disbursed": np.where(failed, -1, disbursed)[keep],
        "failed": failed[keep],
        "principal_cents": principal[keep],
        "term": term[keep],
        "asset": asset[keep],
        "funding": funding[keep],
        "channel": channel[keep],
    }


def _installments(
    rng: np.random.Generator, cust: dict, loans: dict, start_day: np.datetime64, end: int
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Schedules and payments of the disbursed loans; also each loan's status and settled time."""
    live = np.flatnonzero(~loans["failed"])
    term = loans["term"][live].astype(np.int64)
    loan = np.repeat(live, term)
    number = _rank_in_group(term) + 1
    n = loan.size
    disbursed = loans["disbursed"][loan]
    disb_day = start_day + (disbursed // DAY).astype("timedelta64[D]")
    due = _add_months(disb_day, number)
    due_sec = (due - start_day).astype(np.int64) * DAY

    principal = loans["principal_cents"][loan]
    per = principal // term.repeat(term)
    last = number == term.repeat(term)
    amount = np.where(last, principal - per * (term.repeat(term) - 1), per)

    risk = cust["risk"][loans["customer"][loan]]
    # Per loan: maybe default from some installment on, maybe settle early at one.
    n_live = live.size
    loan_risk = cust["risk"][loans["customer"][live]]
    defaults = rng.random(n_live) < 0.025 + loan_risk**1.5 * 0.75
    default_from = np.where(defaults, 1 + (rng.random(n_live) * term).astype(np.int64), 99)
    settles = (~defaults) & (term > 2) & (rng.random(n_live) < P_EARLY_SETTLEMENT)
    settle_at = np.where(settles, 2 + (rng.random(n_live) * (term - 2)).astype(np.int64), 99)

    # Per installment: on time (0-5 days early), or late by days / weeks / months.
    late = rng.random(n) < 0.04 + risk * 0.6
    kind = rng.choice(3, size=n, p=[0.75, 0.2, 0.05])
    late_days = np.choose(
        kind,
        [1 + rng.exponential(5.0, n), 10 + rng.exponential(20.0, n), 45 + rng.exponential(60.0, n)],
    )
    early_days = -np.minimum(rng.exponential(1.5, n), 5.0)
    offset = np.where(late, late_days, early_days).astype(np.int64) * DAY
    paid = due_sec + offset + _time_of_day(rng, n)
    paid = np.maximum(paid, disbursed + HOUR)

    in_default = number >= default_from.repeat(term)
    recovered = rng.random(n) < P_RECOVERY
    recovery = due_sec + (60 + rng.exponential(120.0, n)).astype(np.int64) * DAY
    paid = np.where(in_default, np.where(recovered, recovery, -1), paid)

    # Early settlement: the installment ``settle_at`` and all later ones are paid at once.
    settle_no = settle_at.repeat(term)
    payoff_idx = np.repeat(_group_starts(term) + settle_at - 1, term)
    payoff_idx = np.minimum(payoff_idx, n - 1)
    paid = np.where(number >= settle_no, paid[payoff_idx], paid)

    paid = np.where((paid >= end) | (paid < 0), -1, paid)

    # A loan is SETTLED when all its installments are paid; settled_at is the last payment.
    starts = _group_starts(term)
    unpaid = np.add.reduceat((paid < 0).astype(np.int64), starts) if n else np.zeros(0, np.int64)
    last_paid = np.maximum.reduceat(paid, starts) if n else np.zeros(0, np.int64)
    status = np.where(loans["failed"], 1, 0).astype(np.int8)
    settled = np.full(loans["failed"].size, -1, dtype=np.int64)
    done = unpaid == 0
    status[live[done]] = 2
    settled[live[done]] = last_paid[done]
    inst = {
        "loan": loan,
        "number": number.astype(np.int32),
        "due": due,
        "amount_cents": amount,
        "paid": paid,
    }
    return inst, status, settled


def simulate_block(
    rng: np.random.Generator,
    first_id: int,
    n: int,
    start_day: np.datetime64,
    days: int,
    seed: int,
) -> Block:
    """Simulate ``n`` customers with ids ``first_id..`` over ``days`` days from ``start_day``.

    Row indices in the returned columns (``customer``, ``loan``) are local to the
    block; the writer turns them into ids.
    """
    end = days * DAY
    cust = _customers(rng, first_id, n, days)
    apps, grant = _applications(rng, cust, end)
    loans = _loans(rng, cust, grant, end)
    inst, status, settled = _installments(rng, cust, loans, start_day, end)
    loans["status"] = status
    loans["settled"] = settled
    return Block(customers=cust, applications=apps, loans=loans, installments=inst, seed=seed)


__all__ = ["CHANNELS", "CREDIT_METHODS", "Block", "simulate_block"]
