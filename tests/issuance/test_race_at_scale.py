"""The batch and single issues racing on a campaign at the daily build's scale.

The other race tests use a few hundred customers. Here a segment of
``KEQUN_RACE_CUSTOMERS`` members (default 20,000 in the suite; the benchmark run sets
10,000,000, the demo warehouse's size) gets its daily batch under the shipped campaign's
limits while two processes issue singly, to random members, coupons of the same campaign
and of another exclusive one. Afterwards every limit holds exactly and the database
agrees with every outcome each process was told.
"""

from __future__ import annotations

import os
import random
from datetime import datetime

import pytest

from issuance.clock import SHANGHAI
from serving.db import ServingDB
from tests.approvals import make_live
from tests.issuance.conftest import make_campaign
from tests.issuance.workers import race

CUSTOMERS = int(os.environ.get("KEQUN_RACE_CUSTOMERS", "20000"))
SINGLES = 1000  # requests per single-issue process
NOW = datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI)


def _fill_segment(db: ServingDB, size: int) -> None:
    """``size`` members of ``wake_up`` in chunks (10M rows never sit in one Python list)."""
    step = 200_000
    for start in range(0, size, step):
        db.executemany(
            "INSERT INTO coupon_eligibility (segment, customer_id, as_of, synced_at) "
            "VALUES ('wake_up', ?, '2026-03-09', '2026-03-09 20:00:00')",
            [(c,) for c in range(start, min(start + step, size))])


@pytest.mark.slow
def test_batch_and_singles_at_scale(db: ServingDB, serving_url: str) -> None:
    if db.dialect == "postgresql" and CUSTOMERS > 100_000:
        pytest.skip("the 10M race runs on SQLite (the embedded default)")
    _fill_segment(db, CUSTOMERS)
    daily = max(CUSTOMERS // 50, 100)  # the shipped campaign: 200,000 a day of 10M
    wake = make_campaign("wake", total_stock=daily * 3, daily_limit=daily,
                         stacking="exclusive")
    solo = make_campaign("solo", total_stock=SINGLES, stacking="exclusive")
    make_live(db, wake, solo)
    rng = random.Random(7)
    singles = [[(rng.choice(("wake", "solo")), rng.randrange(CUSTOMERS), f"s{p}-{n}")
                for n in range(SINGLES)] for p in range(2)]
    reports = race(serving_url, wake, [wake, solo], NOW, singles, chunk_size=None,
                   timeout=3600)
    told_ok = sum(r[1].get("ok", 0) for r in reports if isinstance(r[1], dict))
    batch_issued = next(r[1] for r in reports if r[0] == "wake")

    issued = db.scalar("SELECT count(*) FROM coupons WHERE campaign = 'wake'")
    assert issued == daily  # the members far outnumber the limit: the batch fills it
    assert db.scalar("SELECT count(*) FROM coupons") == batch_issued + told_ok
    assert db.fetchall("SELECT customer_id FROM coupons GROUP BY customer_id "
                       "HAVING count(*) > 1") == []  # exclusive on both sides
    for campaign in ("wake", "solo"):
        assert db.scalar("SELECT issued FROM issuance_counters WHERE campaign = ? AND "
                         "bucket = 'total'", (campaign,)) == db.scalar(
            "SELECT count(*) FROM coupons WHERE campaign = ?", (campaign,))
    assert db.scalar("SELECT count(DISTINCT coupon_id) FROM coupons") == db.scalar(
        "SELECT count(*) FROM coupons")
