"""Fixtures for the issuance tests: a serving database on SQLite and on PostgreSQL.

PostgreSQL comes from ``KEQUN_TEST_POSTGRES_URL`` or a throwaway cluster started with
the local ``initdb``/``pg_ctl`` (see ``tests/pg.py``); without either, the PostgreSQL
variants are skipped with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from issuance.clock import ManualClock, day_start
from issuance.schema import migrate
from issuance.service import Issuer
from project.campaign import CHANNELS, Campaign, CouponTemplate, Validity
from serving.db import ServingDB, connect
from tests import pg
from tests.approvals import make_live


@pytest.fixture(scope="session")
def postgres_base_url() -> Iterator[str]:
    """A PostgreSQL server URL for this test session, or a skip with the reason."""
    url = os.environ.get(pg.ENV_URL)
    if url:
        yield url
        return
    bindir, reason = pg.find_server_binaries()
    if bindir is None:
        pytest.skip(reason)
    cluster = pg.start_cluster(bindir)
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def serving_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty serving database URL: a SQLite file or a new PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'serving.sqlite'}"
    base = request.getfixturevalue("postgres_base_url")
    return pg.fresh_schema_url(base, prefix="iss")


@pytest.fixture
def db(serving_url: str) -> Iterator[ServingDB]:
    """An open serving database with the serving and issuance streams migrated."""
    handle = connect(serving_url)
    migrate(handle)
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
def clock() -> ManualClock:
    """A clock standing at 2026-03-10 10:00 Asia/Shanghai."""
    return ManualClock(datetime(2026, 3, 10, 10, 0))


def make_campaign(name: str = "wake", **overrides: object) -> Campaign:
    """A small valid campaign; keyword arguments replace any field."""
    fields: dict[str, object] = dict(
        name=name,
        type="wake_up",
        target_segment="wake_up",
        window_start=day_start(date(2026, 1, 1)),
        window_end=day_start(date(2027, 1, 1)),
        template=CouponTemplate("interest_free_days", 30),
        validity=Validity(starts_after_days=0, days=30),
        total_stock=100,
        daily_limit=None,
        per_customer_limit=1,
        stacking="stackable",
        on_failed_drawdown="void",
        channels=frozenset(CHANNELS),
    )
    fields.update(overrides)
    return Campaign(**fields)  # type: ignore[arg-type]


def make_eligible(db: ServingDB, segment: str, customers: Iterable[int],
                  as_of: date = date(2026, 3, 9)) -> None:
    """Put ``customers`` in ``coupon_eligibility`` for ``segment``."""
    db.executemany(
        "INSERT INTO coupon_eligibility (segment, customer_id, as_of, synced_at) "
        "VALUES (?, ?, ?, ?)",
        [(segment, c, as_of, datetime(2026, 3, 9, 20, 0)) for c in customers],
    )


def make_issuer(db: ServingDB, clock: ManualClock, *campaigns: Campaign,
                live: bool = True) -> Issuer:
    """An issuer over ``campaigns`` (default: one :func:`make_campaign`), each made live
    through the approval state machine (:func:`tests.approvals.make_live`) unless
    ``live`` is False."""
    chosen = campaigns or (make_campaign(),)
    if live:
        make_live(db, *chosen)
    return Issuer(db, {c.name: c for c in chosen}, clock)



def issued_state(db: ServingDB, *, ledger_order: str = "entry_id") -> tuple[object, ...]:
    """What issuing stored: coupons, recorded results, counters, ledger entries (in
    ``ledger_order``) and budgets, to compare two ways of issuing the same requests."""
    return (
        db.fetchall("SELECT coupon_id, campaign, customer_id, status, issue_day, valid_until "
                    "FROM coupons ORDER BY coupon_id"),
        db.fetchall("SELECT idempotency_key, operation, fingerprint, ok, reason "
                    "FROM issuance_requests ORDER BY idempotency_key"),
        db.fetchall("SELECT campaign, bucket, issued FROM issuance_counters "
                    "ORDER BY campaign, bucket"),
        db.fetchall("SELECT coupon_id, campaign, loan_id, kind, amount_cents, request_key "
                    f"FROM coupon_ledger ORDER BY {ledger_order}"),
        db.fetchall("SELECT campaign, reserved_cents, booked_cents FROM campaign_budget "
                    "ORDER BY campaign"),
    )
