"""Worker processes for the concurrency tests (importable, so spawned children find them)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from issuance.clock import ManualClock
from issuance.schema import migrate
from issuance.service import Issuer
from project.campaign import Campaign
from serving.db import connect


def issue_worker(url: str, campaigns: list[Campaign], now: datetime, barrier: Any,
                 results: Any, proc: int, requests: list[tuple[str, int, str]]) -> None:
    """Wait for every worker, then send ``requests`` (campaign, customer, key) at once.

    Puts ``(proc, Counter of outcomes)`` on ``results``: ``'ok'`` or the refusal reason.
    """
    db = connect(url)
    migrate(db)
    issuer = Issuer(db, {c.name: c for c in campaigns}, ManualClock(now))
    seen: Counter[str] = Counter()
    try:
        barrier.wait(timeout=60)
        for campaign, customer, key in requests:
            outcome = issuer.issue(campaign, customer, key)
            seen["ok" if outcome.ok else str(outcome.reason)] += 1
    finally:
        db.close()
    results.put((proc, dict(seen)))


def batch_worker(url: str, campaign: Campaign, now: datetime, barrier: Any, results: Any,
                 chunk_size: int) -> None:
    """Wait for every worker, then run one campaign's batch; put ``(name, report counts)``."""
    from issuance.batch import issue_batch

    db = connect(url)
    migrate(db)
    issuer = Issuer(db, {campaign.name: campaign}, ManualClock(now))
    try:
        barrier.wait(timeout=60)
        report = issue_batch(issuer, campaign, now.date(), chunk_size=chunk_size)
    finally:
        db.close()
    results.put((campaign.name, report.issued, dict(report.refused)))


def mixed_worker(url: str, campaigns: list[Campaign], now: datetime, barrier: Any,
                 results: Any, proc: int, requests: list[tuple[str, int, str]]) -> None:
    """Like :func:`issue_worker`, but a key conflict is an outcome too
    (``'conflict'``) instead of an error."""
    from issuance.outcome import IdempotencyConflict

    db = connect(url)
    migrate(db)
    issuer = Issuer(db, {c.name: c for c in campaigns}, ManualClock(now))
    seen: dict[str, str] = {}
    try:
        barrier.wait(timeout=60)
        for campaign, customer, key in requests:
            try:
                outcome = issuer.issue(campaign, customer, key)
                seen[key] = "ok" if outcome.ok else str(outcome.reason)
            except IdempotencyConflict:
                seen[key] = "conflict"
    finally:
        db.close()
    results.put((proc, seen))


def reverse_worker(url: str, campaigns: list[Campaign], now: datetime, barrier: Any,
                   results: Any, proc: int, requests: list[tuple[str, str, str]]) -> None:
    """Wait for every worker, then send reverses ``(coupon, loan, key)``; put
    ``(proc, Counter of outcomes)`` (``'ok'``, ``'ok:<note>'`` or the refusal reason)."""
    db = connect(url)
    migrate(db)
    issuer = Issuer(db, {c.name: c for c in campaigns}, ManualClock(now))
    seen: Counter[str] = Counter()
    try:
        barrier.wait(timeout=60)
        for coupon, loan, key in requests:
            outcome = issuer.reverse(coupon, loan, key)
            seen[("ok" if outcome.ok else "") + (f":{outcome.reason}" if outcome.reason
                                                  else "")] += 1
    finally:
        db.close()
    results.put((proc, dict(seen)))
