"""Limits hold when several processes issue at the same moment (SQLite and PostgreSQL)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from datetime import datetime

import pytest

from issuance import approval, locks
from issuance.clock import SHANGHAI, ManualClock
from issuance.schema import migrate
from issuance.service import Issuer
from project.campaign import Campaign
from serving.db import ServingDB, connect
from tests import pg
from tests.approvals import make_live
from tests.issuance.conftest import make_campaign, make_eligible, make_issuer
from tests.issuance.workers import batch_worker, issue_worker, mixed_worker, race

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
    make_live(db, campaign)
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
    make_live(db, daily, loyal)
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
    make_live(db, *campaigns)
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
    make_live(db, *campaigns)
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


def test_one_key_is_one_request_across_campaigns_under_concurrency(
    db: ServingDB, serving_url: str
) -> None:
    """Two processes send the same 40 keys at once for different customers, one to an
    open campaign (a coupon row records the success) and one to a closed one (a request
    row records the refusal), so the requests share no campaign or customer lock: for
    every key exactly one request is answered and the other refused as a key conflict."""
    make_eligible(db, "wake_up", range(40))
    open_ = make_campaign("open", total_stock=1000)
    closed = make_campaign("closed", window_end=datetime(2026, 1, 2, tzinfo=SHANGHAI))
    make_live(db, open_, closed)
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    plan = [[("open", c, f"k{c}") for c in range(40)],
            [("closed", 100 + c, f"k{c}") for c in range(40)]]
    procs = [ctx.Process(target=mixed_worker, args=(serving_url, [open_, closed], NOW,
                                                    barrier, results, i, requests))
             for i, requests in enumerate(plan)]
    for proc in procs:
        proc.start()
    seen = dict(results.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    for c in range(40):
        pair = sorted((seen[0][f"k{c}"], seen[1][f"k{c}"]))
        assert pair in (["conflict", "ok"], ["conflict", "outside_window"]), (c, pair)
    coupons = db.scalar("SELECT count(*) FROM coupons")
    refusals = db.scalar("SELECT count(*) FROM issuance_requests")
    assert coupons + refusals == 40


def test_batch_and_single_issues_at_once(db: ServingDB, serving_url: str) -> None:
    """A chunked batch runs while two processes issue singly to the same customers of
    the same campaign and of an exclusive one: nobody deadlocks, and every limit holds."""
    make_eligible(db, "wake_up", range(300))
    wake = make_campaign("wake", total_stock=250, stacking="exclusive")
    solo = make_campaign("solo", total_stock=1000, stacking="exclusive")
    make_live(db, wake, solo)
    singles = [[("wake" if c % 2 else "solo", c, f"s{p}-{c}") for c in range(p, 300, 2)][::-1]
               for p in range(2)]
    reports = race(serving_url, wake, [wake, solo], NOW, singles, chunk_size=25)
    assert len(reports) == 3
    per_customer = db.fetchall("SELECT customer_id, count(*) FROM coupons "
                               "GROUP BY customer_id HAVING count(*) > 1")
    assert per_customer == []  # both campaigns are exclusive: one live coupon each
    issued = db.scalar("SELECT count(*) FROM coupons WHERE campaign = 'wake'")
    assert issued <= 250
    assert db.scalar("SELECT issued FROM issuance_counters WHERE campaign = 'wake' "
                     "AND bucket = 'total'") == issued


def _wait_until_blocked(db: ServingDB, pid: int) -> None:
    """Poll until backend ``pid`` waits on an advisory lock (fails after 30 s)."""
    for _ in range(600):
        if db.scalar("SELECT wait_event FROM pg_stat_activity WHERE pid = ?",
                     (pid,)) == "advisory":
            return
        time.sleep(0.05)
    raise AssertionError(f"backend {pid} never waited on an advisory lock")


def test_approval_changes_and_issues_wait_for_each_other_on_postgresql(
    postgres_base_url: str, clock: ManualClock
) -> None:
    """An issue holds its campaign's lock shared: a state change (here: end) waits for
    an issue in flight, and an issue (the one-statement path) waits for a state change in
    flight, then sees its result."""
    url = pg.fresh_schema_url(postgres_base_url, prefix="iss")
    first, second = connect(url), connect(url)
    try:
        migrate(first)
        make_eligible(first, "wake_up", [1, 2, 3])
        campaign = make_campaign()
        issuer = make_issuer(first, clock, campaign)
        other = Issuer(second, {campaign.name: campaign}, clock)
        pid = int(second.scalar("SELECT pg_backend_pid()"))

        # a state change in flight: the one-statement issue waits, then issues
        results: list[object] = []
        with first.transaction():
            first.execute("SELECT pg_advisory_xact_lock(?, ?)",
                          (locks.CAMPAIGN, locks.lock_key(campaign.name)))
            waiter = threading.Thread(target=lambda: results.append(
                other.issue(campaign.name, 1, "during-change")))
            waiter.start()
            _wait_until_blocked(first, pid)
        waiter.join(30)
        assert [getattr(r, "ok", None) for r in results] == [True]

        # an issue in flight: end waits until it committed, then later issues are refused
        with first.transaction():
            assert issuer.issue_in_transaction(campaign, 2, "in-flight", clock.now()).ok
            ender = threading.Thread(target=approval.end, args=(second, campaign, "ops.li"))
            ender.start()
            _wait_until_blocked(first, pid)
        ender.join(30)
        assert approval.read_state(first, campaign.name).state == "ended"
        assert first.scalar("SELECT count(*) FROM coupons") == 2
        assert issuer.issue(campaign.name, 3, "after-end").reason == "not_live"
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("limit", ["stock", "daily"])
def test_an_issue_that_passed_its_checks_is_refused_when_the_counter_fills_meanwhile(
    postgres_base_url: str, clock: ManualClock, limit: str
) -> None:
    """PostgreSQL: the checks read the counters as committed; the counter itself is raised
    last, only while under its limit. An issue whose checks passed while another
    transaction was taking the last coupon waits for that row, then is refused
    (stock_exhausted or daily_limit), its coupon row removed, the counters exact."""
    url = pg.fresh_schema_url(postgres_base_url, prefix="iss")
    first, second = connect(url), connect(url)
    try:
        migrate(first)
        make_eligible(first, "wake_up", [1, 2])
        campaign = make_campaign(total_stock=2 if limit == "stock" else 10, daily_limit=2)
        issuer = make_issuer(first, clock, campaign)
        assert issuer.issue(campaign.name, 1, "first").ok  # 1 of 2 taken
        other = Issuer(second, {campaign.name: campaign}, clock)
        pid = int(second.scalar("SELECT pg_backend_pid()"))
        bucket = "total" if limit == "stock" else clock.now().date().isoformat()
        results: list[object] = []
        with first.transaction():  # someone takes the last one and has not committed yet
            first.execute("UPDATE issuance_counters SET issued = issued + 1 "
                          "WHERE campaign = ? AND bucket = ?", (campaign.name, bucket))
            waiter = threading.Thread(target=lambda: results.append(
                other.issue(campaign.name, 2, "second")))
            waiter.start()
            for _ in range(600):  # the second issue passed its checks and waits for the row
                if first.scalar("SELECT wait_event_type FROM pg_stat_activity WHERE pid = ?",
                                (pid,)) == "Lock":
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the second issue never waited for the counter row")
        waiter.join(30)
        expected = "stock_exhausted" if limit == "stock" else "daily_limit"
        assert [(getattr(r, "ok", None), getattr(r, "reason", None)) for r in results] == [
            (False, expected)]
        assert first.fetchall("SELECT customer_id FROM coupons") == [(1,)]
        counters = dict(first.fetchall("SELECT bucket, issued FROM issuance_counters "
                                       "WHERE campaign = ?", (campaign.name,)))
        assert counters[bucket] == 2 and counters["total"] == (2 if limit == "stock" else 1)
        assert other.issue(campaign.name, 2, "second").reason == expected  # recorded
    finally:
        first.close()
        second.close()
