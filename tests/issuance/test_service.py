"""Issue, occupy, confirm, reverse and expire against SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from issuance.clock import SHANGHAI, ManualClock, day_start
from issuance.outcome import IdempotencyConflict
from issuance.service import Issuer
from project.campaign import Validity
from serving.db import ServingDB
from tests.issuance.conftest import make_campaign, make_eligible, make_issuer


def states(issuer: Issuer, customer: int) -> list[str]:
    now = issuer.clock.now()
    return [c.effective_status(now) for c in issuer.coupons_of(customer)]


def test_issue_refusal_reasons(db: ServingDB, clock: ManualClock) -> None:
    make_eligible(db, "wake_up", [1, 2, 3])
    issuer = make_issuer(db, clock, make_campaign(total_stock=2, per_customer_limit=1))
    assert issuer.issue("wake", 99, "a").reason == "not_eligible"
    first = issuer.issue("wake", 1, "b")
    assert first.ok and first.status == "unused" and not first.replayed
    assert issuer.issue("wake", 1, "c").reason == "per_customer_limit"
    assert issuer.issue("wake", 2, "d").ok
    assert issuer.issue("wake", 3, "e").reason == "stock_exhausted"
    clock.set(datetime(2027, 1, 1, 0, 0))
    assert issuer.issue("wake", 3, "f").reason == "outside_window"
    counters = issuer.counters("wake")
    assert (counters.issued, counters.remaining) == (2, 0)


def test_an_issue_sends_the_definition_it_is_given_not_an_earlier_one(
        db: ServingDB, clock: ManualClock) -> None:
    """The issuer keeps each campaign's parameters encoded (PostgreSQL): a campaign
    replaced on the issuer is sent as it now is (its stock), not as first encoded."""
    make_eligible(db, "wake_up", [1, 2, 3])
    small = make_campaign(total_stock=1)
    issuer = make_issuer(db, clock, small)
    assert issuer.issue("wake", 1, "a").ok
    assert issuer.issue("wake", 2, "b").reason == "stock_exhausted"
    issuer.campaigns["wake"] = make_campaign(total_stock=2)
    assert issuer.issue("wake", 2, "c").ok
    issuer.campaigns["wake"] = small
    assert issuer.issue("wake", 3, "d").reason == "stock_exhausted"


def test_a_refusal_for_the_room_is_decided_again_and_an_own_refusal_is_replayed(
    db: ServingDB, clock: ManualClock
) -> None:
    """stock_exhausted and daily_limit are not the key's result: the same request issues
    once the campaign has room again (a raised stock, the next day). A refusal of the
    customer's own (not_eligible) is replayed, even after they became eligible."""
    make_eligible(db, "wake_up", [1, 2, 3])
    issuer = make_issuer(db, clock, make_campaign(total_stock=1, daily_limit=1))
    assert issuer.issue("wake", 1, "a").ok
    assert issuer.issue("wake", 2, "b").reason == "stock_exhausted"
    issuer.campaigns["wake"] = make_campaign(total_stock=5, daily_limit=1)
    daily = issuer.issue("wake", 2, "b")
    assert (daily.ok, daily.reason, daily.replayed) == (False, "daily_limit", False)
    clock.advance(days=1)
    issued = issuer.issue("wake", 2, "b")
    assert issued.ok and not issued.replayed
    assert issuer.issue("wake", 2, "b").replayed
    assert issuer.issue("wake", 9, "c").reason == "not_eligible"
    make_eligible(db, "wake_up", [9])
    again = issuer.issue("wake", 9, "c")
    assert (again.reason, again.replayed) == ("not_eligible", True)
    assert db.scalar("SELECT count(*) FROM issuance_requests") == 1


def test_idempotency_returns_first_result_and_rejects_other_requests(
    db: ServingDB, clock: ManualClock
) -> None:
    make_eligible(db, "wake_up", [1, 2])
    issuer = make_issuer(db, clock, make_campaign(total_stock=1))
    first = issuer.issue("wake", 1, "key-1")
    again = issuer.issue("wake", 1, "key-1")
    assert again.replayed and (again.ok, again.coupon_id) == (True, first.coupon_id)
    refused = issuer.issue("wake", 2, "key-2")
    assert refused.reason == "stock_exhausted"
    # a refusal for the campaign's room is not recorded: sent again, decided again
    assert issuer.issue("wake", 2, "key-2") == refused
    with pytest.raises(IdempotencyConflict, match="key-1' was already used"):
        issuer.issue("wake", 2, "key-1")
    assert first.coupon_id is not None
    with pytest.raises(IdempotencyConflict):
        issuer.occupy(first.coupon_id, "L1", "key-1")
    occupied = issuer.occupy(first.coupon_id, "L1", "occ-1")
    assert issuer.occupy(first.coupon_id, "L1", "occ-1").replayed
    with pytest.raises(IdempotencyConflict):
        issuer.occupy(first.coupon_id, "L2", "occ-1")
    with pytest.raises(IdempotencyConflict):
        issuer.issue("wake", 1, "occ-1")
    assert occupied.ok and issuer.counters("wake").issued == 1


def test_daily_limit_resets_at_shanghai_midnight(db: ServingDB) -> None:
    clock = ManualClock(datetime(2026, 3, 10, 23, 59, 59))
    make_eligible(db, "wake_up", range(10))
    issuer = make_issuer(db, clock, make_campaign(daily_limit=2, total_stock=100))
    assert [issuer.issue("wake", c, f"k{c}").ok for c in range(3)] == [True, True, False]
    assert issuer.issue("wake", 3, "k3").reason == "daily_limit"
    clock.set(datetime(2026, 3, 11, 0, 0, 0))
    assert [issuer.issue("wake", c, f"n{c}").ok for c in range(4, 7)] == [True, True, False]
    counters = issuer.counters("wake")
    assert (counters.day, counters.day_issued, counters.issued) == ("2026-03-11", 2, 4)


def test_daily_limit_across_month_end_and_utc_offset(db: ServingDB) -> None:
    # 2026-01-31 16:30 UTC is already 1 February in Shanghai.
    clock = ManualClock(datetime(2026, 1, 31, 23, 59, 59, 999999, tzinfo=SHANGHAI))
    make_eligible(db, "wake_up", range(10))
    issuer = make_issuer(db, clock, make_campaign(daily_limit=1, total_stock=100))
    assert issuer.issue("wake", 0, "a").ok
    assert issuer.issue("wake", 1, "b").reason == "daily_limit"
    clock.set(datetime(2026, 1, 31, 16, 30, tzinfo=__import__("datetime").UTC))
    assert clock.now().date() == date(2026, 2, 1)
    assert issuer.issue("wake", 1, "c").ok
    assert issuer.issue("wake", 2, "d").reason == "daily_limit"
    rows = db.fetchall("SELECT bucket, issued FROM issuance_counters ORDER BY bucket")
    assert rows == [("2026-01-31", 1), ("2026-02-01", 1), ("total", 2)]


def test_exclusive_stacking_at_issue(db: ServingDB, clock: ManualClock) -> None:
    make_eligible(db, "wake_up", [1, 2])
    solo = make_campaign("solo", stacking="exclusive")
    mix = make_campaign("mix", stacking="stackable")
    mix2 = make_campaign("mix2", stacking="stackable")
    issuer = make_issuer(db, clock, solo, mix, mix2)
    assert issuer.issue("mix", 1, "a").ok
    assert issuer.issue("mix2", 1, "b").ok  # stackable with stackable
    assert issuer.issue("solo", 1, "c").reason == "exclusive_conflict"
    assert issuer.issue("solo", 2, "d").ok
    assert issuer.issue("mix", 2, "e").reason == "exclusive_conflict"
    # once the exclusive coupon is past validity it no longer conflicts
    clock.advance(days=31)
    assert issuer.issue("mix", 2, "f").ok


def test_occupy_confirm_and_history(db: ServingDB, clock: ManualClock) -> None:
    make_eligible(db, "wake_up", [1])
    issuer = make_issuer(db, clock)
    coupon = issuer.issue("wake", 1, "i").coupon_id
    assert coupon is not None
    assert issuer.occupy(coupon, "L1", "o", lease_seconds=60).status == "occupied"
    assert issuer.occupy(coupon, "L2", "o2").reason == "wrong_loan"
    assert issuer.confirm(coupon, "L2", "c2").reason == "wrong_loan"
    clock.advance(seconds=59)
    assert issuer.confirm(coupon, "L1", "c").status == "used"
    assert issuer.reverse(coupon, "L2", "r2").reason == "empty_rollback"  # another loan
    reversed_ = issuer.reverse(coupon, "L1", "r")  # the drawdown reversed after confirm
    assert (reversed_.ok, reversed_.status) == (True, "voided")
    history = [(seq, a, b, loan, reason) for seq, a, b, _, loan, reason in
               issuer.history(coupon)]
    assert history == [
        (1, None, "unused", None, "issued"),
        (2, "unused", "occupied", "L1", "occupied"),
        (3, "occupied", "used", "L1", "confirmed"),
        (4, "used", "voided", "L1", "drawdown_reversed"),
    ]


def test_history_is_append_only(db: ServingDB, clock: ManualClock) -> None:
    make_eligible(db, "wake_up", [1])
    issuer = make_issuer(db, clock)
    coupon = issuer.issue("wake", 1, "i").coupon_id
    assert coupon is not None
    issuer.occupy(coupon, "L1", "o")
    assert db.scalar("SELECT count(*) FROM coupon_history WHERE coupon_id = ?", (coupon,)) == 1
    with pytest.raises(Exception, match="append-only"), db.transaction():
        db.execute("UPDATE coupon_history SET reason = 'x' WHERE coupon_id = ?", (coupon,))
    with pytest.raises(Exception, match="append-only"), db.transaction():
        db.execute("DELETE FROM coupon_history WHERE coupon_id = ?", (coupon,))


def test_confirm_after_lease_expiry_fails_and_releases(db: ServingDB, clock: ManualClock) -> None:
    make_eligible(db, "wake_up", [1])
    issuer = make_issuer(db, clock)
    coupon = issuer.issue("wake", 1, "i").coupon_id
    assert coupon is not None
    issuer.occupy(coupon, "L1", "o", lease_seconds=30)
    clock.advance(seconds=30)
    assert states(issuer, 1) == ["unused"]  # read-time: the lease has ended
    late = issuer.confirm(coupon, "L1", "c")
    assert (late.ok, late.reason, late.status) == (False, "lease_expired", "unused")
    assert issuer.confirm(coupon, "L1", "c2").reason == "lease_expired"
    assert issuer.occupy(coupon, "L1", "o-again").reason == "lease_expired"
    assert issuer.occupy(coupon, "L2", "o2").ok  # another loan may use it


def test_expiry_job_releases_leases_and_expires(db: ServingDB, clock: ManualClock) -> None:
    make_eligible(db, "wake_up", [1, 2, 3])
    issuer = make_issuer(db, clock, make_campaign(validity=Validity(starts_after_days=0, days=1)))
    c1, c2, c3 = (issuer.issue("wake", c, f"i{c}").coupon_id for c in (1, 2, 3))
    assert c1 and c2 and c3
    issuer.occupy(c1, "L1", "o1", lease_seconds=600)
    issuer.occupy(c2, "L2", "o2", lease_seconds=600)
    issuer.confirm(c2, "L2", "k2")
    clock.advance(minutes=10)
    assert issuer.expire().released == 1
    assert issuer.coupon(c1).status == "unused"  # type: ignore[union-attr]
    clock.advance(days=1)
    assert states(issuer, 3) == ["expired"]  # read-time, before the job ran
    assert issuer.coupon(c3).status == "unused"  # type: ignore[union-attr]
    report = issuer.expire()
    assert (report.released, report.expired) == (0, 2)
    assert [issuer.coupon(c).status for c in (c1, c2, c3)] == [  # type: ignore[union-attr]
        "expired", "used", "expired"]
    assert issuer.expire() == type(report)(0, 0)
    assert issuer.occupy(c3, "L3", "o3").reason == "expired"


def test_occupy_past_validity_expires_it(db: ServingDB, clock: ManualClock) -> None:
    make_eligible(db, "wake_up", [1])
    issuer = make_issuer(db, clock, make_campaign(
        validity=Validity(starts_after_days=2, days=1)))
    coupon = issuer.issue("wake", 1, "i").coupon_id
    assert coupon is not None
    assert issuer.occupy(coupon, "L1", "o1").reason == "not_yet_valid"
    clock.advance(days=2)
    assert issuer.occupy(coupon, "L1", "o2", channel="OFFLINE").reason == "channel_out_of_scope"
    clock.advance(days=1)
    outcome = issuer.occupy(coupon, "L1", "o3")
    assert (outcome.reason, outcome.status) == ("expired", "expired")
    assert issuer.coupon(coupon).status == "expired"  # type: ignore[union-attr]


@pytest.mark.parametrize(("policy", "after"), [("void", "voided"), ("restore", "unused")])
def test_reverse_follows_campaign_policy(
    db: ServingDB, clock: ManualClock, policy: str, after: str
) -> None:
    make_eligible(db, "wake_up", [1])
    issuer = make_issuer(db, clock, make_campaign(on_failed_drawdown=policy))
    coupon = issuer.issue("wake", 1, "i").coupon_id
    assert coupon is not None
    issuer.occupy(coupon, "L1", "o")
    assert issuer.reverse(coupon, "L2", "r2").reason == "wrong_loan"
    outcome = issuer.reverse(coupon, "L1", "r")
    assert (outcome.ok, outcome.status) == (True, after)
    assert issuer.reverse(coupon, "L1", "r-again").reason == "already_closed"
    assert issuer.occupy(coupon, "L1", "o-late").reason == "loan_reversed"
    assert issuer.occupy(coupon, "L3", "o3").ok == (policy == "restore")


def test_dangling_try_is_refused(db: ServingDB, clock: ManualClock) -> None:
    make_eligible(db, "wake_up", [1])
    issuer = make_issuer(db, clock)
    coupon = issuer.issue("wake", 1, "i").coupon_id
    assert coupon is not None
    early = issuer.reverse(coupon, "L1", "r")
    assert (early.ok, early.reason, early.status) == (True, "empty_rollback", "unused")
    late = issuer.occupy(coupon, "L1", "o")
    assert (late.ok, late.reason) == (False, "dangling_try")
    assert issuer.coupon(coupon).status == "unused"  # type: ignore[union-attr]
    assert issuer.occupy(coupon, "L2", "o2").ok
    assert issuer.reverse("nope", "L1", "r3").reason == "not_found"


def test_stacking_on_one_loan(db: ServingDB, clock: ManualClock) -> None:
    make_eligible(db, "wake_up", [1])
    solo = make_campaign("solo", stacking="exclusive", per_customer_limit=2)
    mix = make_campaign("mix", stacking="stackable", per_customer_limit=2)
    issuer = make_issuer(db, clock, solo, mix)
    m1, m2 = (issuer.issue("mix", 1, k).coupon_id for k in ("m1", "m2"))
    assert m1 and m2
    assert issuer.occupy(m1, "L", "a").ok
    assert issuer.occupy(m2, "L", "b").ok  # two stackable coupons on one loan
    clock.advance(days=40)  # both expire; the exclusive one can be issued now
    issuer.expire()
    s1 = issuer.issue("solo", 1, "s1").coupon_id
    m3 = issuer.issue("mix", 1, "m3").reason
    assert s1 and m3 == "per_customer_limit"
    assert issuer.occupy(s1, "L2", "c").ok
    s2 = issuer.issue("solo", 1, "s2").coupon_id
    assert s2 and issuer.occupy(s2, "L2", "d").reason == "exclusive_conflict"


def test_illegal_transitions_are_refused(db: ServingDB, clock: ManualClock) -> None:
    make_eligible(db, "wake_up", [1])
    issuer = make_issuer(db, clock)
    coupon = issuer.issue("wake", 1, "i").coupon_id
    assert coupon is not None
    assert issuer.confirm(coupon, "L1", "c").reason == "illegal_transition"  # unused -> used
    issuer.occupy(coupon, "L1", "o")
    assert issuer.occupy(coupon, "L1", "o-twice").reason == "illegal_transition"
    issuer.confirm(coupon, "L1", "c2")
    assert issuer.occupy(coupon, "L9", "o9").reason == "illegal_transition"  # used -> occupied
    assert issuer.confirm(coupon, "L1", "c3").reason == "illegal_transition"  # used -> used
    assert issuer.coupon(coupon).status == "used"  # type: ignore[union-attr]
    assert [h[2] for h in issuer.history(coupon)] == ["unused", "occupied", "used"]
    assert issuer.confirm("missing", "L1", "c4").reason == "not_found"


def test_counters_by_effective_status(db: ServingDB, clock: ManualClock) -> None:
    make_eligible(db, "wake_up", [1, 2, 3])
    issuer = make_issuer(db, clock, make_campaign(
        validity=Validity(starts_after_days=0, days=1)))
    for c in (1, 2, 3):
        issuer.issue("wake", c, f"i{c}")
    c2 = issuer.coupons_of(2)[0].coupon_id
    issuer.occupy(c2, "L", "o", lease_seconds=10)
    assert issuer.counters("wake").by_status == {"occupied": 1, "unused": 2}
    clock.advance(seconds=10)
    assert issuer.counters("wake").by_status == {"unused": 3}
    clock.set(day_start(date(2026, 3, 11)) + timedelta(hours=10))
    assert issuer.counters("wake").by_status == {"expired": 3}


def test_issue_many_answers_as_issue_one_by_one(db: ServingDB, clock: ManualClock) -> None:
    """Outcomes in request order, each as :meth:`Issuer.issue` gives it (issued, refused,
    replayed, a repeat inside the batch); on SQLite a failing request takes the batch's
    earlier issues back with it (one transaction), on PostgreSQL each stands alone."""
    make_eligible(db, "wake_up", [1, 2, 3])
    issuer = make_issuer(db, clock, make_campaign(total_stock=2))
    assert issuer.issue("wake", 1, "k1").ok
    outcomes = issuer.issue_many([("wake", 1, "k1"), ("wake", 2, "k2"), ("wake", 9, "k9"),
                                  ("wake", 3, "k3"), ("wake", 2, "k2")])
    assert [(o.ok, o.reason, o.replayed) for o in outcomes] == [
        (True, None, True), (True, None, False), (False, "not_eligible", False),
        (False, "stock_exhausted", False), (True, None, True)]
    assert outcomes[1].coupon_id == outcomes[4].coupon_id
    assert issuer.issue_many([]) == []

    make_eligible(db, "wake_up", [4])
    roomy = make_issuer(db, clock, make_campaign("roomy", total_stock=10))
    with pytest.raises(IdempotencyConflict):
        roomy.issue_many([("roomy", 4, "r4"), ("roomy", 1, "k1")])  # k1 was another request
    kept = db.scalar("SELECT count(*) FROM coupons WHERE campaign = 'roomy'")
    assert kept == (0 if db.dialect == "sqlite" else 1)
