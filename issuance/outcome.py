"""What an issuance request returns, and the reasons a request can be refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from issuance.limits import EXCLUSIVE_CONFLICT
from issuance.limits import MESSAGES as ISSUE_MESSAGES
from kequn.errors import KequnError
from project.scope import CHANNEL_OUT_OF_SCOPE
from project.scope import MESSAGES as SCOPE_MESSAGES

NOT_FOUND: Final = "not_found"
ILLEGAL_TRANSITION: Final = "illegal_transition"
LEASE_EXPIRED: Final = "lease_expired"
WRONG_LOAN: Final = "wrong_loan"
DANGLING_TRY: Final = "dangling_try"
LOAN_REVERSED: Final = "loan_reversed"
EXPIRED: Final = "expired"
NOT_YET_VALID: Final = "not_yet_valid"
EMPTY_ROLLBACK: Final = "empty_rollback"
ALREADY_CLOSED: Final = "already_closed"
UNKNOWN_CAMPAIGN: Final = "unknown_campaign"

MESSAGES: Final[dict[str, str]] = {
    **ISSUE_MESSAGES,
    **SCOPE_MESSAGES,
    UNKNOWN_CAMPAIGN: "the coupon's campaign is not defined any more; its scope is unknown",
    NOT_FOUND: "no such coupon",
    ILLEGAL_TRANSITION: "the coupon's state does not allow this",
    LEASE_EXPIRED: "the loan's lease on the coupon has expired; the coupon was released",
    WRONG_LOAN: "the coupon is occupied by another loan",
    DANGLING_TRY: "this loan's reversal arrived before its occupy; the late occupy is refused",
    LOAN_REVERSED: "this loan's use of the coupon was already reversed",
    EXPIRED: "the coupon is past its validity",
    NOT_YET_VALID: "the coupon's validity has not started",
    CHANNEL_OUT_OF_SCOPE: "the coupon cannot be used on this channel",
    EMPTY_ROLLBACK: "nothing was occupied by this loan; the reversal is recorded "
                    "(a later occupy by this loan will be refused)",
    ALREADY_CLOSED: "this loan's try on the coupon was already closed",
}


__all__ = [
    "CHANNEL_OUT_OF_SCOPE", "EXCLUSIVE_CONFLICT", "MESSAGES", "IdempotencyConflict", "Outcome",
]


class IdempotencyConflict(KequnError):
    """An idempotency key reused for a different request."""

    stage = "request"


@dataclass(frozen=True)
class Outcome:
    """The result of one request: done (``ok``) or refused with a ``reason``.

    ``status`` is the coupon's state right after the request. ``replayed`` is True when
    the result comes from an earlier request with the same idempotency key.
    """

    operation: str
    ok: bool
    reason: str | None = None
    coupon_id: str | None = None
    status: str | None = None
    replayed: bool = False

    @property
    def message(self) -> str:
        """One line for people: what happened and why."""
        what = f"coupon {self.coupon_id}" if self.coupon_id else "request"
        state = f" ({self.status})" if self.status else ""
        if self.ok:
            note = f": {MESSAGES.get(self.reason, self.reason)}" if self.reason else ""
            text = f"{self.operation}: {what}{state}{note}"
        else:
            why = MESSAGES.get(self.reason or "", self.reason or "refused")
            text = f"{self.operation} refused ({self.reason}): {why}"
            if self.coupon_id:
                text += f" [{what}{state}]"
        return text + (" [replayed]" if self.replayed else "")
