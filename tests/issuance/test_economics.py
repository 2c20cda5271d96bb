"""Coupon economics on both back ends: loan-time scope, ledger, budget, approval, void.

Amounts: campaigns here use ``amount_off`` 100 (its worst case is exactly 100.00 under the
default bounds) unless said, so reservations are easy to check by hand.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from issuance import approval
from issuance.clock import SHANGHAI, ManualClock
from issuance.ledger import BudgetUse, budget_use, entries, outstanding
from issuance.service import Issuer
from issuance.usable import usable_coupons
from kequn.errors import ValidationError
from project.campaign import CouponTemplate, LoanScope, Validity
from project.roles import Roles
from project.scope import LoanContext
from serving import audit
from serving.db import ServingDB
from tests.approvals import ROLES as ROLES_FILE
from tests.approvals import make_live
from tests.issuance.conftest import make_campaign, make_eligible, make_issuer
from tests.issuance.workers import batch_worker, issue_worker, reverse_worker

NOW = datetime(2026, 3, 10, 10, 0, tzinfo=SHANGHAI)
ROLES = Roles({"activity_approvers": frozenset({"ann", "maker"}),
               "budget_approvers": frozenset({"bob"}), "operators": frozenset({"olga"})})
# 10000 yuan at 18% for 12 months, equal installments, from 2026-03-10.
TERMS = dict(principal=Decimal("10000"), annual_rate=Decimal("0.18"), term=12,
             start=date(2026, 3, 10))


def budgeted(name: str = "paid", budget: str = "1000", **overrides: object):  # type: ignore[no-untyped-def]
    return make_campaign(name, template=CouponTemplate("amount_off", Decimal("100")),
                         budget=Decimal(budget), **overrides)


# -- loan-time scope ----------------------------------------------------------------------
@pytest.mark.parametrize(("scope", "context", "reason"), [
    (LoanScope("first_drawdown"), LoanContext(first_drawdown=False), "activity_out_of_scope"),
    (LoanScope("first_drawdown"), LoanContext(), "activity_out_of_scope"),
    (LoanScope("first_drawdown_in_window"), LoanContext(first_drawdown_in_window=False),
     "activity_out_of_scope"),
    (LoanScope("drawdown"), LoanContext(first_drawdown=True), "activity_out_of_scope"),
    (LoanScope("credit_granted"), LoanContext(credit_granted_in_window=False),
     "activity_out_of_scope"),
    (LoanScope(asset_parties=frozenset({"KQ_SELF"})), LoanContext(asset_party="WEBANK"),
     "asset_party_out_of_scope"),
    (LoanScope(funding_parties=frozenset({"ICBC"})), LoanContext(funding_party="CMB"),
     "funding_party_out_of_scope"),
    (LoanScope(customer_types=frozenset({"STAFF"})), LoanContext(customer_type="NORMAL"),
     "customer_type_out_of_scope"),
    (LoanScope(credit_methods=frozenset({"PRE_APPROVED"})),
     LoanContext(credit_method="SELF_APPLIED"), "credit_method_out_of_scope"),
    (LoanScope(), LoanContext(channel="H5"), "channel_out_of_scope"),
    (LoanScope(), LoanContext(principal=Decimal("300000"), annual_rate=Decimal("0.1"), term=12,
                              start=date(2026, 3, 10)), "loan_out_of_bounds"),
])
def test_occupy_refuses_per_scope_field(db: ServingDB, clock: ManualClock, scope: LoanScope,
                                        context: LoanContext, reason: str) -> None:
    make_eligible(db, "wake_up", [1])
    campaign = make_campaign(scope=scope, channels=frozenset({"APP"}))
    issuer = make_issuer(db, clock, campaign)
    coupon = issuer.issue("wake", 1, "i1").coupon_id
    assert coupon is not None
    outcome = issuer.occupy(coupon, "L1", "o1", context=context)
    assert (outcome.ok, outcome.reason) == (False, reason)
    assert issuer.coupon(coupon).status == "unused"  # type: ignore[union-attr]


@pytest.mark.parametrize(("scope", "context"), [
    (LoanScope("first_drawdown"), LoanContext(first_drawdown=True)),
    (LoanScope("drawdown"), LoanContext(first_drawdown=False)),
    (LoanScope("credit_granted", customer_types=frozenset({"STAFF"})),
     LoanContext(credit_granted_in_window=True, customer_type="STAFF", channel="APP")),
])
def test_occupy_accepts_a_loan_in_scope(db: ServingDB, clock: ManualClock, scope: LoanScope,
                                        context: LoanContext) -> None:
    make_eligible(db, "wake_up", [1])
    issuer = make_issuer(db, clock, make_campaign(scope=scope))
    coupon = issuer.issue("wake", 1, "i1").coupon_id
    assert issuer.occupy(coupon, "L1", "o1", context=context).ok  # type: ignore[arg-type]
    # the same key with another context is a different request
    with pytest.raises(Exception, match="already used for a different request"):
        issuer.occupy(coupon, "L1", "o1", context=replace(context, customer_type="OFFLINE"))  # type: ignore[arg-type]


# -- ledger and budget --------------------------------------------------------------------
def test_ledger_reserve_book_release_and_reversal(db: ServingDB, clock: ManualClock) -> None:
    make_eligible(db, "wake_up", [1, 2, 3])
    campaign = budgeted()
    issuer = make_issuer(db, clock, campaign)
    make_live(db, campaign)
    ids = [issuer.issue("paid", c, f"i{c}").coupon_id for c in (1, 2, 3)]
    assert budget_use(db, "paid").reserved_cents == 3 * 100_00
    # Coupon 1: a 10000 loan at 18% over 12 months: period 1 interest 10000 * 0.015 =
    # 150.00, so amount_off 100 takes 100.00 from period 1. Booked 100.00, released 100.00.
    context = LoanContext(**TERMS)  # type: ignore[arg-type]
    assert issuer.occupy(ids[0], "L1", "o1", context=context).ok
    assert issuer.confirm(ids[0], "L1", "c1").ok
    # Coupon 2: occupied, then the drawdown fails (policy void): a reversal of 100.00.
    assert issuer.occupy(ids[1], "L2", "o2", context=context).ok
    assert issuer.reverse(ids[1], "L2", "r2").ok
    # Coupon 3: expires unused: released.
    clock.advance(days=40)
    issuer.expire()
    kinds = [(e.coupon_id, e.kind, e.cents) for e in entries(db, campaign="paid")]
    assert kinds == [(ids[0], "reserve", 10000), (ids[1], "reserve", 10000),
                     (ids[2], "reserve", 10000), (ids[0], "book", 10000),
                     (ids[0], "release", 10000), (ids[1], "release", 10000),
                     (ids[2], "release", 10000)]
    use = budget_use(db, "paid")
    assert (use.reserved_cents, use.booked_cents) == (0, 10000)
    counters = issuer.counters("paid")
    assert (counters.reserved_cents, counters.booked_cents) == (0, 10000)
    with pytest.raises(Exception, match="append-only"), db.transaction():
        db.execute("DELETE FROM coupon_ledger")


def test_confirm_books_the_trial_reduction_of_the_loan(db: ServingDB, clock: ManualClock) -> None:
    make_eligible(db, "wake_up", [1])
    campaign = make_campaign(template=CouponTemplate("interest_free_days", 30),
                             budget=Decimal("100000"))
    issuer = make_issuer(db, clock, campaign)
    make_live(db, campaign)
    coupon = issuer.issue("wake", 1, "i1").coupon_id
    # 10000 at 18%, equal installments from 2026-03-10: period 1 (Mar 10 -> Apr 10, 31 days)
    # interest 150.00; 30 free days cover 30/31 of it: 150 * 30/31 = 145.16.
    assert issuer.occupy(coupon, "L1", "o1", context=LoanContext(**TERMS)).ok  # type: ignore[arg-type]
    assert issuer.confirm(coupon, "L1", "c1").ok  # type: ignore[arg-type]
    booked = [e.cents for e in entries(db, coupon_id=coupon) if e.kind == "book"]
    assert booked == [14516]
    assert outstanding(db, [coupon]) == {}  # type: ignore[list-item]


def test_budget_refuses_rather_than_exceeds_and_needs_live(db: ServingDB,
                                                           clock: ManualClock) -> None:
    make_eligible(db, "wake_up", range(10))
    campaign = budgeted(budget="350")
    issuer = make_issuer(db, clock, campaign, live=False)
    assert issuer.issue("paid", 0, "early").reason == "not_live"
    make_live(db, campaign)
    outcomes = [issuer.issue("paid", c, f"k{c}") for c in range(1, 6)]
    assert [o.reason for o in outcomes] == [None, None, None, "budget_exhausted",
                                            "budget_exhausted"]
    assert budget_use(db, "paid").used_cents == 300_00
    approval.end(db, campaign, "ops.li")
    assert issuer.issue("paid", 9, "late").reason == "not_live"


def test_restore_keeps_the_reservation(db: ServingDB, clock: ManualClock) -> None:
    make_eligible(db, "wake_up", [1])
    campaign = budgeted(on_failed_drawdown="restore")
    issuer = make_issuer(db, clock, campaign)
    make_live(db, campaign)
    coupon = issuer.issue("paid", 1, "i1").coupon_id
    assert issuer.occupy(coupon, "L1", "o1").ok  # type: ignore[arg-type]
    assert issuer.reverse(coupon, "L1", "r1").ok  # type: ignore[arg-type]
    assert budget_use(db, "paid").reserved_cents == 100_00


# -- reverse after confirm ----------------------------------------------------------------
# 1000 yuan at 18% over 3 months, equal installments (A = 343.38; outstanding 1000.00,
# 671.62, 338.31): interest 15.00 + 10.07 + 5.07 = 30.14, so an amount_off 100 coupon
# books 30.14 (less than its 100.00 reservation).
SMALL = dict(principal=Decimal("1000"), annual_rate=Decimal("0.18"), term=3,
             start=date(2026, 3, 10))


def test_reverse_after_confirm_books_the_reversal(db: ServingDB, clock: ManualClock) -> None:
    make_eligible(db, "wake_up", [1])
    campaign = budgeted()
    issuer = make_issuer(db, clock, campaign)
    coupon = issuer.issue("paid", 1, "i1").coupon_id
    assert coupon is not None
    assert issuer.occupy(coupon, "L1", "o1", context=LoanContext(**SMALL)).ok  # type: ignore[arg-type]
    assert issuer.confirm(coupon, "L1", "c1").ok
    assert budget_use(db, "paid") == BudgetUse(0, 30_14)
    outcome = issuer.reverse(coupon, "L1", "r1")
    assert (outcome.ok, outcome.status) == (True, "voided")
    assert [(e.kind, e.cents, e.loan_id) for e in entries(db, coupon_id=coupon)] == [
        ("reserve", 100_00, None), ("book", 30_14, "L1"), ("release", 100_00, "L1"),
        ("reversal", 30_14, "L1")]
    assert budget_use(db, "paid") == BudgetUse(0, 0)
    counters = issuer.counters("paid")
    assert (counters.booked_cents, counters.reserved_cents, counters.ledger["reversal"]) == (
        0, 0, 30_14)
    assert issuer.reverse(coupon, "L1", "r1").replayed  # the same request replays
    again = issuer.reverse(coupon, "L1", "r2")  # a second reverse books nothing more
    assert (again.ok, again.reason) == (True, "already_closed")
    assert [h[2:6:3] for h in issuer.history(coupon)][-1] == ("voided", "drawdown_reversed")
    assert len(entries(db, coupon_id=coupon)) == 4
    assert issuer.occupy(coupon, "L1", "o2").reason == "loan_reversed"
    assert issuer.occupy(coupon, "L9", "o3").reason == "illegal_transition"  # voided


def test_reverse_after_confirm_restores_within_the_budget(db: ServingDB,
                                                          clock: ManualClock) -> None:
    """Policy restore: the booking is reversed and the coupon, unused again, reserves its
    worst case again; when the budget cannot cover that any more it is voided instead."""
    make_eligible(db, "wake_up", [1, 2, 3])
    campaign = budgeted(budget="150", on_failed_drawdown="restore")
    issuer = make_issuer(db, clock, campaign)
    first = issuer.issue("paid", 1, "i1").coupon_id
    assert first is not None
    assert issuer.occupy(first, "L1", "o1", context=LoanContext(**SMALL)).ok  # type: ignore[arg-type]
    assert issuer.confirm(first, "L1", "c1").ok
    assert issuer.reverse(first, "L1", "r1").status == "unused"  # 0 + 100.00 <= 150
    assert budget_use(db, "paid") == BudgetUse(100_00, 0)
    assert issuer.occupy(first, "L1", "o1b").reason == "loan_reversed"  # that loan is done
    assert issuer.occupy(first, "L2", "o2", context=LoanContext(**SMALL)).ok  # type: ignore[arg-type]
    assert issuer.confirm(first, "L2", "c2").ok  # booked 30.14, used 30.14
    assert issuer.issue("paid", 2, "i2").ok  # 30.14 + 100.00 <= 150
    # Restoring would need 100.00 more: 100.00 + 100.00 > 150: voided instead.
    outcome = issuer.reverse(first, "L2", "r2")
    assert (outcome.ok, outcome.status) == (True, "voided")
    assert issuer.history(first)[-1][5] == "budget_exhausted"
    assert budget_use(db, "paid") == BudgetUse(100_00, 0)


@pytest.mark.parametrize("policy", ["void", "restore"])
def test_budget_exact_while_confirmed_coupons_are_reversed(
        db: ServingDB, serving_url: str, policy: str) -> None:
    """4 processes reverse five confirmed coupons (each one by two of them) while 4 issue
    to 30 more customers: the budget holds, the budget row equals the ledger's sums, each
    reversal is booked once, and every live coupon holds exactly its reservation."""
    make_eligible(db, "wake_up", range(40))
    campaign = budgeted(budget="1000", total_stock=1000, on_failed_drawdown=policy)
    clock = ManualClock(NOW)
    issuer = make_issuer(db, clock, campaign)
    used = []
    for c in range(10):
        coupon = issuer.issue("paid", c, f"i{c}").coupon_id
        if c < 5:
            assert issuer.occupy(coupon, f"L{c}", f"o{c}", context=LoanContext(**SMALL)).ok  # type: ignore[arg-type]
            assert issuer.confirm(coupon, f"L{c}", f"c{c}").ok  # type: ignore[arg-type]
            used.append((coupon, f"L{c}"))
    assert budget_use(db, "paid") == BudgetUse(5 * 100_00, 5 * 30_14)
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(8), ctx.Queue()
    procs = [ctx.Process(target=reverse_worker, args=(
        serving_url, [campaign], NOW, barrier, results, p,
        [(coupon, loan, f"r{p}-{coupon}") for coupon, loan in used])) for p in range(4)]
    procs += [ctx.Process(target=issue_worker, args=(
        serving_url, [campaign], NOW, barrier, results, p,
        [("paid", 10 + (p * 8 + a) % 30, f"s{p}-{a}") for a in range(8)])) for p in range(4)]
    _run_procs(procs, results)
    use = budget_use(db, "paid")
    assert use.used_cents <= 1000_00
    sums = Counter()
    for e in entries(db, campaign="paid"):
        sums[e.kind] += e.cents
    assert (use.reserved_cents, use.booked_cents) == (
        sums["reserve"] - sums["release"], sums["book"] - sums["reversal"])
    assert use.booked_cents == 0 and sums["reversal"] == 5 * 30_14  # each reversed once
    coupons = [k for c in range(40) for k in issuer.coupons_of(c)]
    held = outstanding(db, [k.coupon_id for k in coupons])
    for coupon in coupons:
        expected = 100_00 if coupon.status in ("unused", "occupied") else 0
        assert held.get(coupon.coupon_id, ("paid", 0))[1] == expected
    assert all(issuer.coupon(c).status in ("voided", "unused") for c, _ in used)  # type: ignore[union-attr]


# -- an approval holds for one definition ---------------------------------------------------
def test_changed_definition_stops_issuing_until_approved_again(db: ServingDB,
                                                               clock: ManualClock) -> None:
    from issuance.batch import issue_batch

    make_eligible(db, "wake_up", [1, 2, 3])
    approved = make_campaign(definition_hash="aaaa")
    issuer = make_issuer(db, clock, approved)
    assert issuer.issue("wake", 1, "i1").ok
    changed = replace(approved, definition_hash="bbbb", total_stock=1000)
    issuer = Issuer(db, {changed.name: changed}, clock)
    refused = issuer.issue("wake", 2, "i2")
    assert (refused.ok, refused.reason) == (False, "not_live")
    assert issuer.issue("wake", 1, "i1").ok  # a replayed key still gives its first result
    assert dict(issue_batch(issuer, changed, date(2026, 3, 10)).refused) == {"not_live": 3}
    state = approval.read_state(db, "wake")
    assert state.state == "live"
    assert approval.why_not_live(state, changed) == (
        "the definition changed since approval (approved aaaa, file now bbbb): submit and "
        "approve it again")
    assert approval.why_not_live(state, approved) is None
    with pytest.raises(ValidationError, match="nothing to submit"):
        approval.submit(db, approved, "ops.li")
    steps = approval.take_live(db, changed, ROLES_FILE)
    assert steps == [("submit", "ops.li"), ("approve activity", "ops.zhou"),
                     ("launch", "ops.li")]
    assert issuer.issue("wake", 2, "i2").ok  # the refusal was not recorded under the key
    # the old definition is now the changed one: approve and launch refuse it
    approval.submit(db, approved, "ops.li")
    with pytest.raises(ValidationError, match="changed since it was submitted"):
        approval.approve(db, changed, "ops.zhou", "activity", ROLES_FILE)


# -- approval and audit -------------------------------------------------------------------
def test_maker_checker(db: ServingDB) -> None:
    campaign = budgeted()
    with pytest.raises(ValidationError, match="is draft; 'campaign_approve_activity' needs"):
        approval.approve(db, campaign, "ann", "activity", ROLES)
    approval.submit(db, campaign, "maker")
    with pytest.raises(ValidationError, match="maker submitted campaign 'paid' and cannot"):
        approval.approve(db, campaign, "maker", "activity", ROLES)
    with pytest.raises(ValidationError, match="bob may not approve a campaign's activity"):
        approval.approve(db, campaign, "bob", "activity", ROLES)
    with pytest.raises(ValidationError, match="needs to know who you are"):
        approval.approve(db, campaign, "", "activity", ROLES)
    assert approval.approve(db, campaign, "ann", "activity", ROLES).state == "pending_approval"
    with pytest.raises(ValidationError, match="already approved by ann"):
        approval.approve(db, campaign, "ann", "activity", ROLES)
    with pytest.raises(ValidationError, match="'campaign_launch' needs it approved"):
        approval.launch(db, campaign, "maker")
    assert approval.approve(db, campaign, "bob", "budget", ROLES).state == "approved"
    assert approval.launch(db, campaign, "maker").state == "live"
    log = audit.entries(db, obj="campaign:paid")
    assert [(e.user, e.action) for e in log] == [
        ("maker", "campaign_submit"), ("ann", "campaign_approve_activity"),
        ("bob", "campaign_approve_budget"), ("maker", "campaign_launch")]
    assert all(e.before_hash != e.after_hash for e in log)
    assert log[0].before_hash == audit.state_hash(
        {"campaign": "paid", "state": "draft", "submitted_by": None,
         "activity_approved_by": None, "budget_approved_by": None, "definition_hash": None})
    with pytest.raises(Exception, match="append-only"), db.transaction():
        db.execute("UPDATE audit_log SET user_name = 'x'")


def test_no_budget_needs_only_activity_and_reject(db: ServingDB) -> None:
    campaign = make_campaign()
    approval.submit(db, campaign, "maker")
    with pytest.raises(ValidationError, match="needs no budget approval"):
        approval.approve(db, campaign, "bob", "budget", ROLES)
    assert approval.reject(db, campaign, "ann", "too generous", ROLES).state == "draft"
    approval.submit(db, campaign, "maker")
    assert approval.approve(db, campaign, "ann", "activity", ROLES).state == "approved"


def test_operator_void(db: ServingDB, clock: ManualClock) -> None:
    make_eligible(db, "wake_up", [1])
    campaign = budgeted()
    issuer = make_issuer(db, clock, campaign)
    make_live(db, campaign)
    coupon = issuer.issue("paid", 1, "i1").coupon_id
    assert coupon is not None
    outcome = issuer.void(coupon, "v1", user="olga", reason="sent by mistake")
    assert (outcome.ok, outcome.status) == (True, "voided")
    assert issuer.void(coupon, "v2", user="olga", reason="again").reason == "illegal_transition"
    assert [(e.action, e.detail) for e in audit.entries(db, obj=f"coupon:{coupon}")] == [
        ("coupon_void", "sent by mistake")]
    assert budget_use(db, "paid").reserved_cents == 0
    assert issuer.history(coupon)[-1][5] == "operator_void"


# -- usable coupons -----------------------------------------------------------------------
def test_usable_best_first_honouring_stacking(db: ServingDB, clock: ManualClock) -> None:
    make_eligible(db, "wake_up", [1])
    campaigns = [
        make_campaign("free30", template=CouponTemplate("interest_free_days", 30)),
        make_campaign("off50", template=CouponTemplate("amount_off", Decimal("50"))),
        make_campaign("off80", template=CouponTemplate("amount_off", Decimal("80"))),
        make_campaign("staff", template=CouponTemplate("amount_off", Decimal("500")),
                      scope=LoanScope(customer_types=frozenset({"STAFF"}))),
    ]
    issuer = make_issuer(db, clock, *campaigns)
    ids = {c.name: issuer.issue(c.name, 1, f"i-{c.name}").coupon_id for c in campaigns}
    result = usable_coupons(issuer, 1, LoanContext(customer_type="NORMAL", **TERMS))  # type: ignore[arg-type]
    # free30: period 1 (Mar 10 -> Apr 10, 31 days) interest 150.00 * 30/31 = 145.16;
    # off80: 80.00; off50: 50.00 (each alone, from period 1).
    assert [(o.campaign, str(o.reduction)) for o in result.options] == [
        ("free30", "145.16"), ("off80", "80.00"), ("off50", "50.00")]
    assert result.refused == [(ids["staff"], "customer_type_out_of_scope")]
    # Stacked in that order: free30 leaves 4.84 of period 1; off80 takes it and 75.16 of
    # period 2 (interest 9233.20 * 0.015 = 138.50); off50 takes 50.00 more: 275.16.
    assert result.best == [ids["free30"], ids["off80"], ids["off50"]]
    assert str(result.best_reduction) == "275.16"
    # The customer's exclusive coupon alone, when it takes more than the stackable ones.
    make_eligible(db, "solo_seg", [2])
    solo = make_campaign("solo", target_segment="solo_seg", stacking="exclusive",
                         template=CouponTemplate("amount_off", Decimal("120")))
    issuer = make_issuer(db, clock, solo)
    coupon = issuer.issue("solo", 2, "i-solo").coupon_id
    alone = usable_coupons(issuer, 2, LoanContext(**TERMS))  # type: ignore[arg-type]
    assert (alone.best, str(alone.best_reduction)) == ([coupon], "120.00")


def test_usable_honours_the_coupons_the_loan_already_holds(db: ServingDB,
                                                            clock: ManualClock) -> None:
    make_eligible(db, "wake_up", [1, 2])
    free30 = make_campaign("free30", template=CouponTemplate("interest_free_days", 30))
    off80 = make_campaign("off80", template=CouponTemplate("amount_off", Decimal("80")))
    off50 = make_campaign("off50", template=CouponTemplate("amount_off", Decimal("50")))
    solo = make_campaign("solo", stacking="exclusive",
                         template=CouponTemplate("amount_off", Decimal("120")))
    issuer = make_issuer(db, clock, free30, off80, off50, solo)
    ids = {c: issuer.issue(c, 1, f"i-{c}").coupon_id for c in ("free30", "off80", "off50")}
    # Loan L1 already holds free30 (stackable): the others combine with it.
    assert issuer.occupy(ids["free30"], "L1", "o1").ok  # type: ignore[arg-type]
    held = usable_coupons(issuer, 1, LoanContext(loan_id="L1", **TERMS))  # type: ignore[arg-type]
    assert held.held == [ids["free30"]] and str(held.held_reduction) == "145.16"
    assert held.best == [ids["off80"], ids["off50"]]
    assert str(held.best_reduction) == "275.16"  # free30 first, then off80, off50 (see above)
    assert held.to_dict()["held"] == [ids["free30"]]
    other = usable_coupons(issuer, 1, LoanContext(loan_id="L9", **TERMS))  # type: ignore[arg-type]
    assert other.held == [] and str(other.best_reduction) == "130.00"  # 80 + 50 alone
    # Customer 2's loan L2 used an exclusive coupon: nothing else is usable on L2.
    solo_id = issuer.issue("solo", 2, "i-solo").coupon_id
    assert issuer.occupy(solo_id, "L2", "o2").ok and issuer.confirm(solo_id, "L2", "c2").ok  # type: ignore[arg-type]
    later = issuer.issue("off50", 2, "i-off50-2").coupon_id  # the exclusive one is used up
    blocked = usable_coupons(issuer, 2, LoanContext(loan_id="L2", **TERMS))  # type: ignore[arg-type]
    assert (blocked.options, blocked.refused, blocked.best) == (
        [], [(later, "exclusive_conflict")], [])
    assert blocked.held == [solo_id] and str(blocked.best_reduction) == "120.00"
    assert issuer.occupy(later, "L2", "o3").reason == "exclusive_conflict"  # as occupy says  # type: ignore[arg-type]
    # Customer 3's loan L3 used a stackable coupon: an exclusive one is refused on L3.
    make_eligible(db, "wake_up", [3])
    stack = issuer.issue("off80", 3, "i-off80-3").coupon_id
    assert issuer.occupy(stack, "L3", "o4").ok and issuer.confirm(stack, "L3", "c4").ok  # type: ignore[arg-type]
    exclusive = issuer.issue("solo", 3, "i-solo-3").coupon_id  # nothing live: issued
    on_l3 = usable_coupons(issuer, 3, LoanContext(loan_id="L3", **TERMS))  # type: ignore[arg-type]
    assert (on_l3.refused, on_l3.best, on_l3.held) == ([(exclusive, "exclusive_conflict")],
                                                      [], [stack])
    elsewhere = usable_coupons(issuer, 3, LoanContext(loan_id="L4", **TERMS))  # type: ignore[arg-type]
    assert elsewhere.best == [exclusive]


# -- concurrency --------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _no_stray_children() -> None:
    yield
    assert not multiprocessing.active_children()


def _run_procs(procs: list, results) -> None:  # type: ignore[no-untyped-def]
    for proc in procs:
        proc.start()
    for _ in procs:
        results.get(timeout=180)
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0


def test_batch_reserves_like_single_issues(db: ServingDB, clock: ManualClock) -> None:
    """The batch refuses not_live before launch, then issues exactly what the budget
    covers (3 × 100.00 of 350) and reserves each coupon, like single issues; a re-run
    replays without reserving again."""
    from issuance.batch import issue_batch

    make_eligible(db, "wake_up", range(8))
    campaign = budgeted(budget="350")
    issuer = make_issuer(db, clock, campaign, live=False)
    early = issue_batch(issuer, campaign, date(2026, 3, 10))
    assert (early.issued, dict(early.refused)) == (0, {"not_live": 8})
    assert db.scalar("SELECT count(*) FROM issuance_requests") == 0  # nothing recorded
    make_live(db, campaign)
    report = issue_batch(issuer, campaign, date(2026, 3, 11))
    assert (report.issued, dict(report.refused)) == (3, {"budget_exhausted": 5})
    assert budget_use(db, "paid").reserved_cents == 300_00
    assert [e.kind for e in entries(db, campaign="paid")] == ["reserve"] * 3
    again = issue_batch(issuer, campaign, date(2026, 3, 11))
    assert (again.issued, again.replayed_issued) == (0, 3)
    assert budget_use(db, "paid").reserved_cents == 300_00


@pytest.mark.parametrize("path", ["single", "batch", "both"])
def test_budget_exact_under_eight_processes(db: ServingDB, serving_url: str, path: str) -> None:
    """Budget 1050 covers ten 100.00 reservations: 8 processes issuing one by one, or 8
    running the set-based batch, or 4 and 4, at the same moment never get an eleventh."""
    make_eligible(db, "wake_up", range(40))
    campaign = budgeted(budget="1050", total_stock=1000)
    make_live(db, campaign)
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(8), ctx.Queue()
    singles = {"single": 8, "batch": 0, "both": 4}[path]
    procs = [ctx.Process(target=issue_worker, args=(
        serving_url, [campaign], NOW, barrier, results, p,
        [("paid", (p * 5 + a) % 40, f"s{p}-{a}") for a in range(5)])) for p in range(singles)]
    procs += [ctx.Process(target=batch_worker, args=(serving_url, campaign, NOW, barrier,
                                                      results, 3)) for _ in range(8 - singles)]
    _run_procs(procs, results)
    assert db.scalar("SELECT count(*) FROM coupons") == 10
    assert budget_use(db, "paid").reserved_cents == 10 * 100_00
    assert Counter(e.kind for e in entries(db, campaign="paid")) == Counter({"reserve": 10})


# -- the budget invariant over random operations -------------------------------------------
OPERATIONS = st.lists(st.tuples(
    st.sampled_from(["issue", "occupy", "confirm", "reverse", "void", "expire", "wait"]),
    st.integers(0, 5), st.integers(1, 3)), max_size=30)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(OPERATIONS)
def test_budget_invariant_over_random_operations(tmp_path_factory, operations) -> None:  # type: ignore[no-untyped-def]
    """Whatever happens, reserved + booked stays within the budget, the budget row equals
    the ledger's sums, a live coupon holds exactly its reservation and a finished one none."""
    from issuance.schema import migrate
    from serving.db import connect

    url = f"sqlite:///{tmp_path_factory.mktemp('inv') / 'serving.sqlite'}"
    db = connect(url)
    migrate(db)
    try:
        clock = ManualClock(datetime(2026, 3, 10, 10, 0))
        make_eligible(db, "wake_up", range(6))
        campaign = budgeted(budget="420", per_customer_limit=2,
                            on_failed_drawdown="restore" if len(operations) % 2 else "void",
                            validity=Validity(starts_after_days=0, days=3))
        issuer = make_issuer(db, clock, campaign)
        make_live(db, campaign)
        context = LoanContext(**TERMS)  # type: ignore[arg-type]
        for n, (op, customer, loan) in enumerate(operations):
            ids = [c.coupon_id for c in issuer.coupons_of(customer)]
            coupon = ids[0] if ids else "none"
            if op == "issue":
                issuer.issue("paid", customer, f"i{n}")
            elif op == "occupy":
                issuer.occupy(coupon, f"L{loan}", f"o{n}", context=context)
            elif op == "confirm":
                issuer.confirm(coupon, f"L{loan}", f"c{n}")
            elif op == "reverse":
                issuer.reverse(coupon, f"L{loan}", f"r{n}")
            elif op == "void":
                issuer.void(coupon, f"v{n}", user="olga", reason="test")
            elif op == "expire":
                issuer.expire()
            else:
                clock.advance(days=loan)
            use = budget_use(db, "paid")
            assert use.used_cents <= 420_00
            sums = {k: 0 for k in ("reserve", "book", "release", "reversal")}
            for e in entries(db, campaign="paid"):
                sums[e.kind] += e.cents
            assert use.reserved_cents == sums["reserve"] - sums["release"]
            assert use.booked_cents == sums["book"] - sums["reversal"]
            assert issuer.counters("paid").booked_cents == use.booked_cents
        coupons = [k for c in range(6) for k in issuer.coupons_of(c)]
        held = outstanding(db, [k.coupon_id for k in coupons])
        for coupon in coupons:
            expected = 100_00 if coupon.status in ("unused", "occupied") else 0
            assert held.get(coupon.coupon_id, ("paid", 0))[1] == expected
    finally:
        db.close()
