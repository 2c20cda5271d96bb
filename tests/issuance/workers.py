"""Worker processes for the concurrency tests (importable, so spawned children find them)."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

from issuance.clock import ManualClock
from issuance.schema import migrate
from issuance.service import Issuer
from project.campaign import Campaign
from serving.db import connect


def _send(url: str, campaigns: list[Campaign], now: datetime, barrier: Any, results: Any,
          proc: int, requests: list[Any],
          one: Callable[[Issuer, Any], str]) -> None:
    """Wait for every worker, then send ``requests`` through ``one(issuer, request)`` (the
    outcome's label); put ``(proc, Counter of labels)`` on ``results``."""
    db = connect(url)
    migrate(db)
    issuer = Issuer(db, {c.name: c for c in campaigns}, ManualClock(now))
    seen: Counter[str] = Counter()
    try:
        barrier.wait(timeout=60)
        for request in requests:
            seen[one(issuer, request)] += 1
    finally:
        db.close()
    results.put((proc, dict(seen)))


def _issue_one(issuer: Issuer, request: tuple[str, int, str]) -> str:
    outcome = issuer.issue(*request)
    return "ok" if outcome.ok else str(outcome.reason)


def issue_worker(url: str, campaigns: list[Campaign], now: datetime, barrier: Any,
                 results: Any, proc: int, requests: list[tuple[str, int, str]]) -> None:
    """Wait for every worker, then send ``requests`` (campaign, customer, key) at once.

    Puts ``(proc, Counter of outcomes)`` on ``results``: ``'ok'`` or the refusal reason.
    """
    _send(url, campaigns, now, barrier, results, proc, requests, _issue_one)


def race(url: str, batch: Campaign, campaigns: list[Campaign], now: datetime,
         singles: list[list[tuple[str, int, str]]], chunk_size: int | None,
         timeout: float = 120) -> list[tuple[Any, ...]]:
    """``batch``'s batch in one process while one process per list in ``singles`` issues
    those requests (of ``campaigns``), all released together; every process's report
    (the batch's ``(name, issued, refused)``, each single's ``(proc, outcomes)``)."""
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(1 + len(singles)), ctx.Queue()
    procs = [ctx.Process(target=batch_worker, args=(url, batch, now, barrier, results,
                                                    chunk_size))]
    procs += [ctx.Process(target=issue_worker, args=(url, campaigns, now, barrier, results,
                                                     i, requests))
              for i, requests in enumerate(singles)]
    for proc in procs:
        proc.start()
    reports = [results.get(timeout=timeout) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    return reports


def batch_worker(url: str, campaign: Campaign, now: datetime, barrier: Any, results: Any,
                 chunk_size: int | None) -> None:
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


def _reverse_one(issuer: Issuer, request: tuple[str, str, str]) -> str:
    outcome = issuer.reverse(*request)
    return ("ok" if outcome.ok else "") + (f":{outcome.reason}" if outcome.reason else "")


def reverse_worker(url: str, campaigns: list[Campaign], now: datetime, barrier: Any,
                   results: Any, proc: int, requests: list[tuple[str, str, str]]) -> None:
    """Wait for every worker, then send reverses ``(coupon, loan, key)``; put
    ``(proc, Counter of outcomes)`` (``'ok'``, ``'ok:<note>'`` or the refusal reason)."""
    _send(url, campaigns, now, barrier, results, proc, requests, _reverse_one)

