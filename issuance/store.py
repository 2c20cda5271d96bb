"""Rows of the issuance tables: coupons, their transitions, requests and closed tries.

Every function here runs inside the caller's transaction; none commits. A state
change goes through :func:`move` (or :func:`move_many`), which checks the transition
against :mod:`issuance.states`, bumps the row's version and appends the history row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from issuance.clock import from_db, to_db
from issuance.ledger import release_reservations
from issuance.outcome import IdempotencyConflict, Outcome
from issuance.states import EXPIRED, OCCUPIED, UNUSED, VOIDED, check_move
from kequn.errors import ExecutionError, Location
from serving.db import ServingDB

COLUMNS = (
    "coupon_id", "campaign", "customer_id", "status", "template_kind", "template_value",
    "exclusive", "on_failed_drawdown", "channels", "lease_seconds", "issued_at", "issue_day",
    "valid_from", "valid_until", "loan_id", "lease_until", "version",
)
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM coupons"


@dataclass(frozen=True)
class Coupon:
    """One coupon row; times are aware Asia/Shanghai datetimes."""

    coupon_id: str
    campaign: str
    customer_id: int
    status: str
    template_kind: str
    template_value: str
    exclusive: bool
    on_failed_drawdown: str
    channels: frozenset[str]
    lease_seconds: int
    issued_at: datetime
    issue_day: date
    valid_from: datetime
    valid_until: datetime
    loan_id: str | None
    lease_until: datetime | None
    version: int

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Coupon:
        values = dict(zip(COLUMNS, row, strict=True))
        for key in ("issued_at", "valid_from", "valid_until", "lease_until"):
            if values[key] is not None:
                values[key] = from_db(values[key])
        values["exclusive"] = bool(values["exclusive"])
        values["customer_id"] = int(values["customer_id"])
        values["channels"] = frozenset(str(values["channels"]).split(","))
        if not isinstance(values["issue_day"], date):
            values["issue_day"] = date.fromisoformat(str(values["issue_day"]))
        return cls(**values)

    def lease_over(self, now: datetime) -> bool:
        """Whether the coupon is occupied under a lease that has ended by ``now``."""
        return self.status == OCCUPIED and self.lease_until is not None and self.lease_until <= now

    def effective_status(self, now: datetime) -> str:
        """The state as of ``now``: ended leases release, past validity expires."""
        status = UNUSED if self.lease_over(now) else self.status
        if status == UNUSED and self.valid_until <= now:
            return EXPIRED
        return status

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """A JSON-friendly view; with ``now`` the status is the effective one."""
        data: dict[str, Any] = {}
        for key in COLUMNS:
            value = getattr(self, key)
            if isinstance(value, datetime | date):
                value = value.isoformat()
            elif isinstance(value, frozenset):
                value = sorted(value)
            data[key] = value
        if now is not None:
            data["status"] = self.effective_status(now)
            data["stored_status"] = self.status
        return data


def read_coupon(db: ServingDB, coupon_id: str, *, lock: bool = False) -> Coupon | None:
    """The coupon, or None; with ``lock`` its row is locked (PostgreSQL FOR UPDATE)."""
    suffix = " FOR UPDATE" if lock and db.dialect == "postgresql" else ""
    row = db.fetchone(f"{_SELECT} WHERE coupon_id = ?{suffix}", (coupon_id,))
    return Coupon.from_row(row) if row else None


def coupons_where(db: ServingDB, where: str, params: Sequence[Any], *,
                  lock: bool = False) -> list[Coupon]:
    """Coupons matching a fixed ``where`` clause (written by this package, values bound)."""
    suffix = " FOR UPDATE" if lock and db.dialect == "postgresql" else ""
    rows = db.fetchall(f"{_SELECT} WHERE {where}{suffix}", params)
    return [Coupon.from_row(r) for r in rows]


_UPDATE = (
    "UPDATE coupons SET status = ?, loan_id = ?, lease_until = ?, version = ?, "
    "updated_at = ? WHERE coupon_id = ? AND version = ?"
)
_HISTORY = (
    "INSERT INTO coupon_history (coupon_id, seq, from_status, to_status, at, loan_id, "
    "reason, request_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def _planned(coupon: Coupon, target: str, loan_id: str | None,
             lease_until: datetime | None) -> Coupon:
    check_move(coupon.status, target)
    return replace(coupon, status=target, loan_id=loan_id, lease_until=lease_until,
                   version=coupon.version + 1)


def move(
    db: ServingDB,
    coupon: Coupon,
    target: str,
    *,
    now: datetime,
    reason: str,
    key: str | None,
    loan_id: str | None,
    lease_until: datetime | None = None,
) -> Coupon:
    """Apply one legal transition and append its history row; return the new coupon."""
    return move_many(db, [(coupon, target, loan_id, lease_until)], now=now, reason=reason,
                     key=key)[0]


def move_many(
    db: ServingDB,
    moves: Sequence[tuple[Coupon, str, str | None, datetime | None]],
    *,
    now: datetime,
    reason: str,
    key: str | None,
) -> list[Coupon]:
    """Apply several transitions ``(coupon, target, loan_id, lease_until)`` at once.

    Each is checked against the legal transitions first; a row changed by someone else
    since it was read (version mismatch) fails the whole call, so the caller's
    transaction rolls back.
    """
    if not moves:
        return []
    planned = [_planned(c, t, loan, lease) for c, t, loan, lease in moves]
    at = to_db(now)
    updates = [
        (p.status, p.loan_id, to_db(p.lease_until) if p.lease_until else None, p.version, at,
         p.coupon_id, p.version - 1)
        for p in planned
    ]
    history = [
        (p.coupon_id, p.version, c.status, p.status, at, p.loan_id or c.loan_id, reason, key)
        for (c, *_), p in zip(moves, planned, strict=True)
    ]
    changed = sum(db.execute(_UPDATE, row).rowcount for row in updates)
    if changed != len(updates):
        raise ExecutionError(
            f"{len(updates) - changed} coupon(s) changed concurrently; nothing was applied",
            Location(),
        )
    db.executemany(_HISTORY, history)
    ended = [p.coupon_id for p in planned if p.status in (EXPIRED, VOIDED)]
    if ended:  # a coupon that can no longer be used gives its budget reservation back
        release_reservations(db, ended, now, key)
    return planned


def close_try(db: ServingDB, coupon_id: str, loan_id: str, reason: str, now: datetime) -> None:
    """Record that ``loan_id``'s try on ``coupon_id`` is over (idempotent)."""
    db.execute(
        "INSERT INTO coupon_loan_closed (coupon_id, loan_id, reason, closed_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (coupon_id, loan_id) DO NOTHING",
        (coupon_id, loan_id, reason, to_db(now)),
    )


def closed_try(db: ServingDB, coupon_id: str, loan_id: str) -> str | None:
    """Why ``loan_id``'s try on ``coupon_id`` was closed, or None if it is not."""
    return db.scalar(
        "SELECT reason FROM coupon_loan_closed WHERE coupon_id = ? AND loan_id = ?",
        (coupon_id, loan_id),
    )


@dataclass(frozen=True)
class Request:
    """One request: its operation, idempotency key and the arguments that identify it."""

    operation: str
    key: str
    arguments: tuple[str, ...]

    @property
    def fingerprint(self) -> str:
        return "\x1f".join((self.operation, *self.arguments))


def coupon_id_for(key: str) -> str:
    """The id of the coupon an issue request with idempotency key ``key`` creates.

    Deriving it from the key makes the coupon row itself the record of a successful
    issue (no separate request row), which keeps an issue's write set small.

    >>> coupon_id_for("batch:wake:42:2026-03-10")
    '86fc05e836d1a753cde3'
    """
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def _conflict(request: Request, fingerprint: str) -> IdempotencyConflict:
    first = " ".join(fingerprint.split("\x1f"))
    return IdempotencyConflict(
        f"idempotency key '{request.key}' was already used for a different request ({first})",
        hint="use a new key for a new request",
    )


# The first result of a key: its request row, or the coupon its issue created. Callers may
# append more columns (the issue path adds its counters) and pass the first 8 to interpret().
REPLAY_SELECT = (
    "SELECT r.operation, r.fingerprint, r.ok, r.reason, r.coupon_id, r.status, "
    "c.campaign, c.customer_id"
)
REPLAY_FROM = (
    " FROM (SELECT 1 AS one) AS probe "
    "LEFT JOIN issuance_requests AS r ON r.idempotency_key = ? "
    "LEFT JOIN coupons AS c ON c.coupon_id = ?"
)


def replay_params(request: Request) -> tuple[str, str]:
    """The parameters of :data:`REPLAY_FROM` for ``request``."""
    return request.key, coupon_id_for(request.key)


def interpret_replay(request: Request, row: Sequence[Any]) -> Outcome | None:
    """The replayed outcome in a row of :data:`REPLAY_SELECT` (None for a new key).

    Raises :class:`IdempotencyConflict` if the key was used for a different request.
    """
    operation, fingerprint, ok, reason, coupon_id, status, campaign, customer = row[:8]
    if operation is not None:
        if fingerprint != request.fingerprint:
            raise _conflict(request, str(fingerprint))
        return Outcome(operation, bool(ok), reason, coupon_id, status, replayed=True)
    if campaign is None:
        return None
    fingerprint = Request("issue", request.key, (str(campaign), str(int(customer)))).fingerprint
    if fingerprint != request.fingerprint:
        raise _conflict(request, fingerprint)
    return Outcome("issue", True, None, coupon_id_for(request.key), "unused", replayed=True)


def replay(db: ServingDB, request: Request) -> Outcome | None:
    """The first result recorded under ``request.key``, or None for a new key.

    A successful issue is recorded by its coupon (id derived from the key); every other
    result by a row in ``issuance_requests``. Raises :class:`IdempotencyConflict` if the
    key was used for a different request.
    """
    row = db.fetchone(REPLAY_SELECT + REPLAY_FROM, replay_params(request))
    assert row is not None
    return interpret_replay(request, row)


def record(db: ServingDB, request: Request, outcome: Outcome, now: datetime) -> Outcome:
    """Store ``outcome`` as the result of ``request.key``; return it."""
    db.execute(
        "INSERT INTO issuance_requests (idempotency_key, operation, fingerprint, ok, reason, "
        "coupon_id, status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (request.key, request.operation, request.fingerprint, int(outcome.ok), outcome.reason,
         outcome.coupon_id, outcome.status, to_db(now)),
    )
    return outcome
