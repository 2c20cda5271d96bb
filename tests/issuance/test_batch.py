"""Batch issuance: every eligible customer once per day, limits exact, re-runs no-ops."""

from __future__ import annotations

import tempfile
from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from issuance import approval, batch
from issuance.batch import BatchReport, batch_key, issue_batch
from issuance.clock import ManualClock
from issuance.ledger import budget_use
from issuance.outcome import IdempotencyConflict
from issuance.schema import migrate
from issuance.service import Issuer
from issuance.store import coupon_id_for
from project.campaign import Campaign, CouponTemplate
from serving.db import ServingDB, connect
from tests.issuance.conftest import issued_state, make_campaign, make_eligible, make_issuer


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


@pytest.mark.parametrize("chunk", [None, 4])
def test_batch_hashes_each_candidates_key_once(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, chunk: int | None
) -> None:
    """SQLite: the coupon id (a Python hash of the key) is computed once per candidate,
    not once per use in the statement (SQLite re-evaluates a flattened subquery's
    expressions)."""
    calls: Counter[str] = Counter()

    def counted(key: str) -> str:
        calls[key] += 1
        return coupon_id_for(key)

    monkeypatch.setattr(batch, "_sqlite_coupon_id", counted)
    db = connect(f"sqlite:///{tmp_path / 'serving.sqlite'}")
    migrate(db)
    make_eligible(db, "wake_up", range(1, 11))
    campaign = make_campaign(total_stock=20, daily_limit=6)
    report = issue_batch(make_issuer(db, clock, campaign), campaign, date(2026, 3, 10),
                         chunk_size=chunk)
    assert (report.issued, dict(report.refused)) == (6, {"daily_limit": 4})
    assert len(calls) == 10 and set(calls.values()) == {1}
    db.close()


def _traced_batch(db: ServingDB, clock: ManualClock) -> tuple[BatchReport, list[str]]:
    """A batch of a campaign (stock 20, daily limit 6) on ``db`` for 2026-03-10, and the
    SQL statements it sent."""
    campaign = make_campaign(total_stock=20, daily_limit=6)
    issuer = make_issuer(db, clock, campaign)
    statements: list[str] = []
    db.raw.set_trace_callback(statements.append)
    try:
        return issue_batch(issuer, campaign, date(2026, 3, 10)), statements
    finally:
        db.raw.set_trace_callback(None)


def test_a_large_segment_on_sqlite_is_issued_in_chunks(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above SQLITE_WHOLE members the SQLite batch commits chunk by chunk (single issues
    get the write lock between chunks), with the same result as all at once."""
    reports = {}
    for chunked in (False, True):
        monkeypatch.setattr(batch, "SQLITE_WHOLE", 5 if chunked else 1_000)
        monkeypatch.setattr(batch, "SQLITE_CHUNK", 4)
        db = connect(f"sqlite:///{tmp_path / f'serving-{chunked}.sqlite'}")
        migrate(db)
        make_eligible(db, "wake_up", range(1, 11))
        report, statements = _traced_batch(db, clock)
        begins = [s for s in statements if s.startswith("BEGIN IMMEDIATE")]
        assert len(begins) == (3 if chunked else 1)
        reports[chunked] = (report.issued, dict(report.refused), db.fetchall(
            "SELECT coupon_id, customer_id FROM coupons ORDER BY coupon_id"))
        db.close()
    assert reports[True] == reports[False]
    assert reports[True][:2] == (6, {"daily_limit": 4})


def test_the_transactions_are_sized_by_the_segment_as_its_last_sync_left_it(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch reads the segment's size from ``sync_state`` when a sync recorded it
    (no count of ``coupon_eligibility``), else counts the rows; either way only the
    transactions' size depends on it."""
    monkeypatch.setattr(batch, "SQLITE_WHOLE", 5)
    monkeypatch.setattr(batch, "SQLITE_CHUNK", 4)
    begins = {}
    for recorded in (None, 3, 10):
        db = connect(f"sqlite:///{tmp_path / f'serving-{recorded}.sqlite'}")
        migrate(db)
        make_eligible(db, "wake_up", range(1, 11))
        if recorded is not None:
            db.execute("INSERT INTO sync_state (segment, sync_id, as_of, members, "
                       "definition_hash, updated_at) VALUES ('wake_up', 's1', '2026-03-10', "
                       "?, NULL, '2026-03-10 02:00:00')", (recorded,))
        report, statements = _traced_batch(db, clock)
        assert (report.issued, report.eligible) == (6, 10)
        begins[recorded] = sum(s.startswith("BEGIN IMMEDIATE") for s in statements)
        counted = [s for s in statements if "count(*) FROM coupon_eligibility" in s]
        assert bool(counted) == (recorded is None)
        db.close()
    assert begins == {None: 3, 3: 1, 10: 3}


PLANNED = st.lists(
    st.tuples(st.text(alphabet="0123456789abcdefF8g", max_size=3), st.integers(1, 5)),
    unique=True, max_size=40)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=PLANNED, windowed=st.booleans())
def test_the_cutoff_is_the_candidate_at_its_rank_in_coupon_id_order(
    tmp_path: Path, rows: list[tuple[str, int]], windowed: bool
) -> None:
    """Searched first within a window of the coupon ids or among all, the cutoff is the
    planned coupon at the given rank in (coupon id, customer) order, ids shared by two
    customers or outside the hex digits included; None past the last."""
    db = connect(f"sqlite:///{Path(tempfile.mkdtemp(dir=tmp_path)) / 'plan.sqlite'}")
    batch._create_tables(db, batch._dialect_sql(db), candidates=False)
    db.raw.executemany(
        "INSERT INTO kequn_batch_plan (coupon_id, customer_id, idem_key, fate) "
        "VALUES (?, ?, 'k', ?)",
        [(c, n, "issued" if (len(c) + n) % 4 else "not_eligible") for c, n in rows])
    issued = sorted(r for r in rows if (len(r[0]) + r[1]) % 4)
    with mock.patch.object(batch, "_WINDOWED", 0 if windowed else 10**9):
        for rank in range(len(issued) + 2):
            expected = issued[rank] if rank < len(issued) else None
            assert batch._cutoff(db, rank) == expected
    db.close()


@pytest.mark.parametrize("spread", ["hashes", "one_digit"])
def test_the_cutoff_sorts_only_a_window_of_evenly_spread_ids(tmp_path: Path,
                                                             spread: str) -> None:
    """Over hash ids the cutoff is found by sorting a window of a few thousand of 60,000
    planned coupons, at every rank tried, the ends included; where the window misses (ids
    not spread as hashes are: all starting with '0') all are sorted, same answer."""
    ids = [coupon_id_for(f"k{n}") for n in range(60_000)]
    if spread == "one_digit":
        ids = ["0" + i[1:] for i in ids]
    rows = [(c, n % 7) for n, c in enumerate(ids)]
    db = connect(f"sqlite:///{tmp_path / 'plan.sqlite'}")
    batch._create_tables(db, batch._dialect_sql(db), candidates=False)
    db.raw.executemany("INSERT INTO kequn_batch_plan (coupon_id, customer_id, idem_key, fate) "
                       "VALUES (?, ?, 'k', 'issued')", rows)
    ordered = sorted(rows)
    sorts: list[str] = []
    fetchone = db.fetchone

    def spy(sql: str, params: tuple[object, ...] = ()) -> tuple[object, ...] | None:
        if "ORDER BY" in sql:
            sorts.append("window" if "coupon_id >= ?" in sql else "all")
        return fetchone(sql, params)

    with mock.patch.object(db, "fetchone", spy):
        for rank in (0, 1, 777, 29_999, 30_000, 45_678, 59_998, 59_999):
            assert batch._cutoff(db, rank) == ordered[rank]
        assert batch._cutoff(db, 60_000) is None
    if spread == "hashes":
        assert sorts == ["window"] * 8
    else:  # the windows of the high ranks lie past every id
        assert sorts[-4:] == ["all"] * 4
    db.close()


def test_batch_with_no_eligible_customers(db: ServingDB, clock: ManualClock) -> None:
    campaign = make_campaign()
    report = issue_batch(make_issuer(db, clock, campaign), campaign, date(2026, 3, 10))
    assert (report.eligible, report.total_issued, sum(report.refused.values())) == (0, 0, 0)


def test_batch_replays_single_refusals_and_refuses_foreign_keys(
    db: ServingDB, clock: ManualClock
) -> None:
    """A batch key refused earlier by a single issue replays that refusal; a batch key
    taken by a different request stops the batch with the key named, writing nothing."""
    make_eligible(db, "wake_up", [1, 2, 3])
    campaign = make_campaign()
    other = make_campaign("other")
    issuer = make_issuer(db, clock, campaign, other)
    day = date(2026, 3, 10)
    clock.set(datetime(2025, 1, 1, 10, 0))  # outside the window: refused and recorded
    assert issuer.issue(campaign.name, 1, batch_key(campaign.name, 1, day)).reason == (
        "outside_window")
    clock.set(datetime(2026, 3, 10, 10, 0))
    report = issue_batch(issuer, campaign, day)
    assert (report.issued, dict(report.refused)) == (2, {"outside_window": 1})
    issuer.issue(other.name, 3, batch_key(campaign.name, 3, date(2026, 3, 11)))
    with pytest.raises(IdempotencyConflict, match=r"batch:wake:3:2026-03-11' was already "
                       r"used for a different request \(issue other 3\)"):
        issue_batch(issuer, campaign, date(2026, 3, 11))
    assert db.scalar("SELECT count(*) FROM coupons WHERE campaign = 'wake'") == 2


# -- the batch equals issuing one by one --------------------------------------------------

CUSTOMERS = st.lists(st.integers(1, 30), unique=True, min_size=1, max_size=16)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    """Eligible customers, limits, and what the database already holds."""
    eligible = draw(CUSTOMERS)
    return dict(
        eligible=eligible,
        stock=draw(st.integers(1, 14)),
        daily=draw(st.none() | st.integers(1, 10)),
        per_customer=draw(st.integers(1, 2)),
        exclusive=draw(st.booleans()),
        other_exclusive=draw(st.booleans()),
        # earlier coupons of this campaign (another day), and of another campaign
        earlier=draw(st.lists(st.sampled_from(eligible), unique=True) if eligible
                     else st.just([])),
        others=draw(st.lists(st.sampled_from(eligible), unique=True) if eligible
                    else st.just([])),
        # batch keys of the day already answered by single issues
        answered=draw(st.lists(st.sampled_from(eligible), unique=True, max_size=5)
                      if eligible else st.just([])),
        chunk=draw(st.none() | st.integers(1, 7)),
        outside=draw(st.integers(0, 9)) == 0,
        # a budget of this many 100.00 coupons (+ 50.00 that covers no further one)
        budget=draw(st.none() | st.integers(0, 12)),
        ended=draw(st.integers(0, 9)) == 0,  # the campaign ended before the batch
        windowed=draw(st.booleans()),  # the cutoff searched first in a window of the ids
    )


def _setup(url: str, s: dict[str, object]) -> tuple[ServingDB, Issuer, Campaign]:
    db = connect(url)
    migrate(db)
    make_eligible(db, "wake_up", s["eligible"])  # type: ignore[arg-type]
    budget = {} if s["budget"] is None else dict(
        template=CouponTemplate("amount_off", Decimal("100")),
        budget=Decimal(s["budget"]) * 100 + 50)  # type: ignore[operator]
    campaign = make_campaign(total_stock=s["stock"], daily_limit=s["daily"],
                             per_customer_limit=s["per_customer"],
                             stacking="exclusive" if s["exclusive"] else "stackable",
                             **budget)  # type: ignore[arg-type]
    other = make_campaign("other", total_stock=1000,
                          stacking="exclusive" if s["other_exclusive"] else "stackable")
    clock = ManualClock(datetime(2026, 3, 9, 10, 0))
    issuer = make_issuer(db, clock, campaign, other)
    for c in s["earlier"]:  # type: ignore[attr-defined]
        issuer.issue(campaign.name, c, f"earlier-{c}")
    for c in s["others"]:  # type: ignore[attr-defined]
        issuer.issue(other.name, c, f"other-{c}")
    clock.set(datetime(2026, 3, 10, 10, 0))
    if s["outside"]:
        clock.set(datetime(2028, 3, 10, 10, 0))
    for c in s["answered"]:  # type: ignore[attr-defined]
        issuer.issue(campaign.name, c, batch_key(campaign.name, c, DAY))
    if s["ended"]:
        approval.end(db, campaign, "ops.li")
    return db, issuer, campaign


DAY = date(2026, 3, 10)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(s=scenarios())
# the room runs out at the last planned coupon; the customer refused by their own limit
# after it in coupon-id order is refused by the stock first
@example(s=dict(eligible=[11, 1, 2, 3, 4, 5, 6, 7], stock=8, daily=None, per_customer=1,
                exclusive=False, other_exclusive=False, earlier=[11], others=[], answered=[],
                chunk=None, outside=False, budget=None, ended=False, windowed=False))
def test_batch_equals_one_by_one(tmp_path: Path, s: dict[str, object]) -> None:
    """The set-based batch writes what single issues in coupon-id order write: coupons,
    refusals, counters and, for a budgeted campaign, the same reservations; the budget is
    never passed, and as many coupons as it covers are issued while limits allow; a
    campaign that is not live issues nothing and records nothing new."""
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    batch_db, batch_issuer, campaign = _setup(f"sqlite:///{folder / 'batch.sqlite'}", s)
    single_db, single_issuer, _ = _setup(f"sqlite:///{folder / 'single.sqlite'}", s)
    with mock.patch.object(batch, "_WINDOWED", 0 if s["windowed"] else batch._WINDOWED):
        report = issue_batch(batch_issuer, campaign, DAY, chunk_size=s["chunk"])  # type: ignore[arg-type]
    seen: Counter[str] = Counter()
    for c in sorted(s["eligible"], key=lambda c: coupon_id_for(  # type: ignore[attr-defined]
            batch_key(campaign.name, c, DAY))):
        outcome = single_issuer.issue(campaign.name, c, batch_key(campaign.name, c, DAY))
        seen["ok" if outcome.ok else str(outcome.reason)] += 1
    assert issued_state(batch_db) == issued_state(single_db)
    assert report.total_issued == seen.pop("ok", 0)
    assert dict(report.refused) == dict(seen)
    assert report.eligible == len(s["eligible"])  # type: ignore[arg-type]
    if s["budget"] is not None:
        use = budget_use(batch_db, campaign.name)
        assert use.used_cents <= int(s["budget"]) * 100_00 + 50_00  # type: ignore[call-overload]
        assert use.reserved_cents == 100_00 * batch_db.scalar(
            "SELECT count(*) FROM coupons WHERE campaign = ?", (campaign.name,))
        if report.refused.get("budget_exhausted"):  # refused only once the budget is full
            assert use.used_cents + 100_00 > int(s["budget"]) * 100_00 + 50_00  # type: ignore[call-overload]
    if s["ended"]:
        assert report.issued == 0 and set(report.refused) <= {"not_live"} | {
            str(r) for (r,) in single_db.fetchall("SELECT reason FROM issuance_requests")}
    again = issue_batch(batch_issuer, campaign, DAY)
    assert (again.total_issued, again.refused, again.issued) == (
        report.total_issued, report.refused, 0)
    assert issued_state(batch_db) == issued_state(single_db)
    batch_db.close()
    single_db.close()
