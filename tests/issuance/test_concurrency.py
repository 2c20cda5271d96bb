"""Limits hold when several processes issue at the same moment (SQLite and PostgreSQL)."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from datetime import datetime

import pytest

from issuance.clock import SHANGHAI
from project.campaign import Campaign
from serving.db import ServingDB
from tests.issuance.conftest import make_campaign, make_eligible
from tests.issuance.workers import batch_worker, issue_worker

PROCS = 4
ATTEMPTS = 10
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI)


def run_together(url: str, campaigns: list[Campaign],
                 plan: list[list[tuple[str, int, str]]]) -> Counter[str]:
    """Start one process per request list, release them together, sum their outcomes.

    Forked children open their own database connections (the parent's are never used
    in them); fork keeps the start-up cheap.
    """
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(len(plan))
    results = ctx.Queue()
    procs = [ctx.Process(target=issue_worker,
                         args=(url, campaigns, NOW, barrier, results, i, requests))
             for i, requests in enumerate(plan)]
    for proc in procs:
        proc.start()
    total: Counter[str] = Counter()
    for _ in procs:
        _, seen = results.get(timeout=120)
        total.update(seen)
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    return total


def test_stock_edge_under_concurrent_processes(db: ServingDB, serving_url: str) -> None:
    make_eligible(db, "wake_up", range(PROCS * ATTEMPTS))
    campaign = make_campaign(total_stock=10)
    plan = [[("wake", p * ATTEMPTS + a, f"p{p}-{a}") for a in range(ATTEMPTS)]
            for p in range(PROCS)]
    total = run_together(serving_url, [campaign], plan)
    assert total == Counter({"ok": 10, "stock_exhausted": PROCS * ATTEMPTS - 10})
    assert db.scalar("SELECT count(*) FROM coupons") == 10
    assert db.scalar("SELECT issued FROM issuance_counters WHERE bucket = 'total'") == 10


def test_daily_and_per_customer_limits_under_concurrency(
    db: ServingDB, serving_url: str
) -> None:
    make_eligible(db, "wake_up", range(PROCS * ATTEMPTS))
    daily = make_campaign("daily", total_stock=1000, daily_limit=7)
    loyal = make_campaign("loyal", total_stock=1000, per_customer_limit=3)
    plan = [[("daily", p * ATTEMPTS + a, f"d{p}-{a}") for a in range(ATTEMPTS)]
            + [("loyal", 5, f"l{p}-{a}") for a in range(3)] for p in range(PROCS)]
    total = run_together(serving_url, [daily, loyal], plan)
    assert total == Counter({"ok": 7 + 3, "daily_limit": PROCS * ATTEMPTS - 7,
                             "per_customer_limit": PROCS * 3 - 3})
    assert db.fetchall("SELECT campaign, count(*) FROM coupons GROUP BY campaign "
                       "ORDER BY campaign") == [("daily", 7), ("loyal", 3)]


def test_exclusive_across_campaigns_and_same_key_under_concurrency(
    db: ServingDB, serving_url: str
) -> None:
    make_eligible(db, "wake_up", [1, 2])
    campaigns = [make_campaign(f"solo{p}", stacking="exclusive") for p in range(PROCS)]
    plan = [[(f"solo{p}", 1, f"x{p}"), ("solo0", 2, "shared-key")] for p in range(PROCS)]
    total = run_together(serving_url, campaigns, plan)
    assert total == Counter({"ok": 1 + PROCS, "exclusive_conflict": PROCS - 1})
    assert db.scalar("SELECT count(*) FROM coupons WHERE customer_id = 1") == 1
    assert db.scalar("SELECT count(*) FROM coupons WHERE customer_id = 2") == 1


@pytest.fixture(autouse=True)
def _no_stray_children() -> None:
    yield
    assert not multiprocessing.active_children()


def test_concurrent_batches_of_exclusive_campaigns(db: ServingDB, serving_url: str) -> None:
    """Two exclusive campaigns batch the same 60 customers at once: every customer ends
    with exactly one coupon, and (PostgreSQL) the ordered customer locks never deadlock."""
    make_eligible(db, "wake_up", range(60))
    campaigns = [make_campaign(f"solo{i}", stacking="exclusive", total_stock=100)
                 for i in range(2)]
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=batch_worker, args=(serving_url, c, NOW, barrier, results, 7))
             for c in campaigns]
    for proc in procs:
        proc.start()
    reports = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert sum(issued for _, issued, _ in reports) == 60
    assert sum(r.get("exclusive_conflict", 0) for _, _, r in reports) == 60
    assert db.fetchall("SELECT count(*), count(DISTINCT customer_id) FROM coupons") == [(60, 60)]
