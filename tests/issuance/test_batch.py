"""Batch issuance: every eligible customer once per day, limits exact, re-runs no-ops."""

from __future__ import annotations

from datetime import date

from issuance.batch import batch_key, issue_batch
from issuance.clock import ManualClock
from issuance.store import coupon_id_for
from serving.db import ServingDB
from tests.issuance.conftest import make_campaign, make_eligible, make_issuer


def test_batch_issues_to_each_eligible_customer_and_reruns_are_noops(
    db: ServingDB, clock: ManualClock
) -> None:
    make_eligible(db, "wake_up", range(1, 26))
    make_eligible(db, "other", range(100, 110))
    campaign = make_campaign(total_stock=20, daily_limit=15)
    issuer = make_issuer(db, clock, campaign)
    day = date(2026, 3, 10)
    first = issue_batch(issuer, campaign, day, chunk_size=7)
    assert (first.eligible, first.issued, first.replayed_issued) == (25, 15, 0)
    assert dict(first.refused) == {"daily_limit": 10}
    again = issue_batch(issuer, campaign, day, chunk_size=4)
    assert (again.issued, again.replayed_issued, dict(again.refused)) == (
        0, 15, {"daily_limit": 10})
    issued = {c for (c,) in db.fetchall("SELECT customer_id FROM coupons")}
    by_coupon_id = sorted(range(1, 26), key=lambda c: coupon_id_for(
        batch_key(campaign.name, c, day)))
    assert issued == set(by_coupon_id[:15])  # served in coupon-id order
    # the next day: 5 coupons left; in this day's order, the stock (checked before the
    # per-customer limit) runs out, then everybody is refused for the stock
    clock.advance(days=1)
    expected: dict[str, int] = {}
    left, holders = 5, set(issued)
    for c in sorted(range(1, 26), key=lambda c: coupon_id_for(
            batch_key(campaign.name, c, date(2026, 3, 11)))):
        reason = ("stock_exhausted" if left == 0 else
                  "per_customer_limit" if c in holders else None)
        if reason:
            expected[reason] = expected.get(reason, 0) + 1
        else:
            left -= 1
    nxt = issue_batch(issuer, campaign, date(2026, 3, 11))
    assert (nxt.issued, dict(nxt.refused)) == (5, expected)
    assert issuer.counters(campaign.name).issued == 20


def test_batch_keys_are_single_issue_keys(db: ServingDB, clock: ManualClock) -> None:
    make_eligible(db, "wake_up", [7])
    campaign = make_campaign()
    issuer = make_issuer(db, clock, campaign)
    single = issuer.issue(campaign.name, 7, batch_key(campaign.name, 7, date(2026, 3, 10)))
    report = issue_batch(issuer, campaign, date(2026, 3, 10))
    assert single.ok and (report.issued, report.replayed_issued) == (0, 1)


def test_batch_with_no_eligible_customers(db: ServingDB, clock: ManualClock) -> None:
    campaign = make_campaign()
    report = issue_batch(make_issuer(db, clock, campaign), campaign, date(2026, 3, 10))
    assert (report.eligible, report.total_issued, sum(report.refused.values())) == (0, 0, 0)
