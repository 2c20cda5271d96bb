"""PostgreSQL: an issue finds the customer's coupons by customer, whatever plan is cached.

A backend caches a generic plan for each statement of ``kequn_issue`` (and psycopg
prepares the multi-statement path's snapshot query) from about its sixth call on. Up to
issuance migration 7 the exclusive-conflict probe was ``EXISTS (... customer_id = ? AND
((status = 'occupied' AND ...) OR (status = 'unused' AND valid_until > ?)) ...)``; a
generic plan made while the table was small was seen ORing the customer index with the
index of every unused coupon's validity, so each issue read every unused coupon. Since
migration 8 the customer's own limits are aggregates over their coupons found by
``customer_id`` alone.

The tests make the planner's choice visible: ``auto_explain`` prints every statement's
plan as a notice, generic plans are forced, and the customer index is taken away (with
sequential scans discouraged), so any index on the status or validity is what a planner
would turn to.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from issuance.clock import ManualClock
from issuance.schema import _PG_ISSUE_ONE_READ
from serving.db import ServingDB
from tests.issuance.conftest import make_campaign, make_eligible, make_issuer

VALIDITY_INDEXES = ("coupons_unused_validity", "coupons_lease")


@pytest.fixture
def plans(db: ServingDB) -> Iterator[list[str]]:
    """The plans of every statement ``db`` runs from now on (PostgreSQL only)."""
    if db.dialect != "postgresql":
        pytest.skip("the plans are PostgreSQL's")
    try:
        db.execute("LOAD 'auto_explain'")
    except psycopg.Error as exc:  # a server without contrib, or without superuser
        pytest.skip(f"auto_explain is not available: {exc}")
    seen: list[str] = []
    db.raw.add_notice_handler(lambda notice: seen.append(notice.message_primary or ""))
    for setting in ("auto_explain.log_min_duration = 0",
                    "auto_explain.log_nested_statements = on",
                    "auto_explain.log_level = 'notice'",
                    "plan_cache_mode = force_generic_plan",
                    "enable_seqscan = off"):
        db.execute(f"SET {setting}")
    db.execute("DROP INDEX coupons_customer")
    yield seen


def _issue_some(db: ServingDB, clock: ManualClock, *, in_transaction: bool = False) -> None:
    campaign = make_campaign(total_stock=1000)
    make_eligible(db, "wake_up", range(1, 9))
    issuer = make_issuer(db, clock, campaign)
    for customer in range(1, 9):
        if in_transaction:
            with db.transaction():
                assert issuer.issue(campaign.name, customer, f"k{customer}").ok
        else:
            assert issuer.issue(campaign.name, customer, f"k{customer}").ok


def _read_validity_index(plans: list[str]) -> list[str]:
    return [p for p in plans if any(index in p for index in VALIDITY_INDEXES)]


def test_an_issue_never_reads_the_validity_indexes(db: ServingDB, plans: list[str],
                                                   clock: ManualClock) -> None:
    _issue_some(db, clock)
    assert any("kequn_issue" in p for p in plans)  # the plans were seen
    assert _read_validity_index(plans) == []


def test_an_issue_in_a_transaction_never_reads_the_validity_indexes(
        db: ServingDB, plans: list[str], clock: ManualClock) -> None:
    """The multi-statement path (a budgeted campaign, a caller's transaction) too."""
    _issue_some(db, clock, in_transaction=True)
    assert any("FROM coupons WHERE customer_id" in p for p in plans)
    assert _read_validity_index(plans) == []


def test_the_probe_of_version_5_did_read_them(db: ServingDB, plans: list[str],
                                              clock: ManualClock) -> None:
    """What migration 8 mends, shown under the same conditions: the old probe's plan
    goes to the index of every unused coupon."""
    db.execute(_PG_ISSUE_ONE_READ)
    _issue_some(db, clock)
    assert _read_validity_index(plans)
