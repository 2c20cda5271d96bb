"""A hypothesis state machine: the service against a small in-memory model.

Random sequences of issue / occupy / confirm / reverse / expire / reused keys, with the
clock jumping across midnights and validity ends. After every step the stored coupons,
counters and history must agree with the model and with every limit.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from issuance.clock import SHANGHAI, ManualClock, business_day
from issuance.limits import NOT_RECORDED
from issuance.outcome import IdempotencyConflict, Outcome
from issuance.schema import migrate
from issuance.service import Issuer
from issuance.states import check_move
from project.campaign import Validity
from serving.db import ServingDB, connect
from tests import pg
from tests.approvals import make_live
from tests.issuance.conftest import make_campaign, make_eligible

CAMPAIGNS = {
    "solo": make_campaign("solo", stacking="exclusive", total_stock=6, daily_limit=3,
                          per_customer_limit=2, on_failed_drawdown="void",
                          validity=Validity(starts_after_days=0, days=2), lease_seconds=600),
    "mix": make_campaign("mix", stacking="stackable", total_stock=3, daily_limit=4,
                         per_customer_limit=1, on_failed_drawdown="restore",
                         validity=Validity(starts_after_days=0, days=2), lease_seconds=600),
}
ELIGIBLE = (0, 1, 2, 3)
CUSTOMERS = (0, 1, 2, 3, 4)
LOANS = ("L1", "L2", "L3")
START = datetime(2026, 3, 10, 22, 0, tzinfo=SHANGHAI)


@dataclass(frozen=True)
class ModelCoupon:
    campaign: str
    customer: int
    status: str
    loan: str | None
    lease_until: datetime | None
    valid_until: datetime
    exclusive: bool
    policy: str


class Model:
    """What the service should do, written as plainly as possible."""

    def __init__(self) -> None:
        self.coupons: dict[str, ModelCoupon] = {}
        self.closed: dict[tuple[str, str], str] = {}
        self.issued: Counter[str] = Counter()
        self.daily: Counter[tuple[str, date]] = Counter()
        self.per_customer: Counter[tuple[str, int]] = Counter()

    @staticmethod
    def effective(c: ModelCoupon, now: datetime) -> str:
        status = c.status
        if status == "occupied" and c.lease_until is not None and c.lease_until <= now:
            status = "unused"
        if status == "unused" and c.valid_until <= now:
            return "expired"
        return status

    def settle(self, cid: str, now: datetime) -> ModelCoupon:
        c = self.coupons[cid]
        if c.status == "occupied" and c.lease_until is not None and c.lease_until <= now:
            assert c.loan is not None
            self.closed.setdefault((cid, c.loan), "lease_expired")
            c = replace(c, status="unused", loan=None, lease_until=None)
        if c.status == "unused" and c.valid_until <= now:
            c = replace(c, status="expired")
        self.coupons[cid] = c
        return c

    def issue(self, name: str, customer: int, now: datetime) -> str | None:
        campaign = CAMPAIGNS[name]
        if customer not in ELIGIBLE:
            return "not_eligible"
        if self.issued[name] >= campaign.total_stock:
            return "stock_exhausted"
        if self.daily[(name, business_day(now))] >= campaign.effective_daily_limit:
            return "daily_limit"
        if self.per_customer[(name, customer)] >= campaign.per_customer_limit:
            return "per_customer_limit"
        live = [c for c in self.coupons.values()
                if c.customer == customer and c.campaign != name
                and self.effective(c, now) in ("unused", "occupied")]
        if any(c.exclusive or campaign.exclusive for c in live):
            return "exclusive_conflict"
        return None

    def add(self, cid: str, name: str, customer: int, now: datetime) -> None:
        campaign = CAMPAIGNS[name]
        self.coupons[cid] = ModelCoupon(name, customer, "unused", None, None,
                                        campaign.validity.period(now)[1], campaign.exclusive,
                                        campaign.on_failed_drawdown)
        self.issued[name] += 1
        self.daily[(name, business_day(now))] += 1
        self.per_customer[(name, customer)] += 1

    def occupy(self, cid: str, loan: str, lease: int, now: datetime) -> tuple[bool, str | None]:
        c = self.settle(cid, now)
        closed = self.closed.get((cid, loan))
        if closed is not None:
            return False, {"empty_rollback": "dangling_try",
                           "lease_expired": "lease_expired"}.get(closed, "loan_reversed")
        if c.status == "expired":
            return False, "expired"
        if c.status == "occupied" and c.loan != loan:
            return False, "wrong_loan"
        if c.status != "unused":
            return False, "illegal_transition"
        others = [o for oid, o in self.coupons.items() if oid != cid and o.loan == loan and (
            o.status == "used" or (o.status == "occupied" and o.lease_until is not None
                                   and o.lease_until > now))]
        if others and (c.exclusive or any(o.exclusive for o in others)):
            return False, "exclusive_conflict"
        self.coupons[cid] = replace(c, status="occupied", loan=loan,
                                    lease_until=now + timedelta(seconds=lease))
        return True, None

    def confirm(self, cid: str, loan: str, now: datetime) -> tuple[bool, str | None]:
        c = self.coupons[cid]
        if c.status == "occupied" and c.loan == loan:
            if c.lease_until is not None and c.lease_until <= now:
                self.settle(cid, now)
                return False, "lease_expired"
            self.coupons[cid] = replace(c, status="used")
            return True, None
        c = self.settle(cid, now)
        closed = self.closed.get((cid, loan))
        if closed == "lease_expired":
            return False, "lease_expired"
        if closed is not None:
            return False, "loan_reversed"
        if c.status == "occupied":
            return False, "wrong_loan"
        return False, "illegal_transition"

    def _reversed(self, cid: str, loan: str, now: datetime) -> tuple[bool, str | None]:
        """The loan reversed: the coupon voided, or (policy restore) unused again."""
        c = self.coupons[cid]
        self.closed[(cid, loan)] = "reversed"
        if c.policy == "void":
            self.coupons[cid] = replace(c, status="voided")
        else:
            self.coupons[cid] = replace(c, status="unused", loan=None, lease_until=None)
        self.settle(cid, now)
        return True, None

    def reverse(self, cid: str, loan: str, now: datetime) -> tuple[bool, str | None]:
        c = self.coupons[cid]
        if c.status == "occupied" and c.loan == loan:
            if c.lease_until is not None and c.lease_until <= now:
                self.settle(cid, now)
                return True, "lease_expired"
            return self._reversed(cid, loan, now)
        c = self.settle(cid, now)
        if (cid, loan) in self.closed:
            return True, "already_closed"
        if c.status == "occupied":
            return False, "wrong_loan"
        if c.status == "used" and c.loan == loan:  # reversed after confirm
            return self._reversed(cid, loan, now)
        self.closed[(cid, loan)] = "empty_rollback"
        return True, "empty_rollback"


class IssuanceMachine(RuleBasedStateMachine):
    """Drives an Issuer and the Model side by side."""

    def __init__(self, url_factory: Callable[[], str]) -> None:
        super().__init__()
        self.url_factory = url_factory
        self.db: ServingDB | None = None

    @initialize()
    def open(self) -> None:
        self.db = connect(self.url_factory())
        migrate(self.db)
        make_eligible(self.db, "wake_up", ELIGIBLE)
        self.clock = ManualClock(START)
        make_live(self.db, *CAMPAIGNS.values())
        self.issuer = Issuer(self.db, CAMPAIGNS, self.clock)
        self.model = Model()
        self.results: dict[str, tuple[tuple[str, ...], Outcome]] = {}
        self.ids: list[str] = []
        self.serial = 0

    def teardown(self) -> None:
        if self.db is not None:
            self.db.close()

    def new_key(self) -> str:
        self.serial += 1
        return f"k{self.serial}"

    def remember(self, key: str, request: tuple[str, ...], outcome: Outcome) -> None:
        assert not outcome.replayed
        self.results[key] = (request, outcome)

    @rule(name=st.sampled_from(sorted(CAMPAIGNS)), customer=st.sampled_from(CUSTOMERS))
    def issue(self, name: str, customer: int) -> None:
        now = self.clock.now()
        expected = self.model.issue(name, customer, now)
        key = self.new_key()
        outcome = self.issuer.issue(name, customer, key)
        assert (outcome.ok, outcome.reason) == (expected is None, expected)
        if outcome.ok:
            assert outcome.coupon_id is not None
            self.model.add(outcome.coupon_id, name, customer, now)
            self.ids.append(outcome.coupon_id)
        if outcome.reason in NOT_RECORDED:  # not the key's result: decided again
            again = self.issuer.issue(name, customer, key)
            assert again == outcome and not again.replayed
            return
        self.remember(key, ("issue", name, str(customer)), outcome)

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data(), loan=st.sampled_from(LOANS), lease=st.sampled_from([60, 3600]))
    def occupy(self, data: st.DataObject, loan: str, lease: int) -> None:
        cid = data.draw(st.sampled_from(self.ids))
        expected = self.model.occupy(cid, loan, lease, self.clock.now())
        key = self.new_key()
        outcome = self.issuer.occupy(cid, loan, key, lease_seconds=lease)
        assert (outcome.ok, outcome.reason) == expected
        self.remember(key, ("occupy", cid, loan, str(lease), ""), outcome)

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data(), loan=st.sampled_from(LOANS))
    def confirm(self, data: st.DataObject, loan: str) -> None:
        cid = data.draw(st.sampled_from(self.ids))
        expected = self.model.confirm(cid, loan, self.clock.now())
        key = self.new_key()
        outcome = self.issuer.confirm(cid, loan, key)
        assert (outcome.ok, outcome.reason) == expected
        self.remember(key, ("confirm", cid, loan), outcome)

    @precondition(lambda self: bool(self.ids))
    @rule(data=st.data(), loan=st.sampled_from(LOANS))
    def reverse(self, data: st.DataObject, loan: str) -> None:
        cid = data.draw(st.sampled_from(self.ids))
        expected = self.model.reverse(cid, loan, self.clock.now())
        key = self.new_key()
        outcome = self.issuer.reverse(cid, loan, key)
        assert (outcome.ok, outcome.reason) == expected
        self.remember(key, ("reverse", cid, loan), outcome)

    @precondition(lambda self: bool(self.results))
    @rule(data=st.data(), same=st.booleans())
    def reuse_key(self, data: st.DataObject, same: bool) -> None:
        key = data.draw(st.sampled_from(sorted(self.results)))
        request, first = self.results[key]
        if same:
            again = self._send(request, key)
            assert again == replace(first, replayed=True)
        else:
            other = ("issue", "mix", "3") if request[0] != "issue" else ("confirm", "x", "L1")
            with pytest.raises(IdempotencyConflict):
                self._send(other, key)

    def _send(self, request: tuple[str, ...], key: str) -> Outcome:
        op, *args = request
        if op == "issue":
            return self.issuer.issue(args[0], int(args[1]), key)
        if op == "occupy":
            return self.issuer.occupy(args[0], args[1], key, lease_seconds=int(args[2]))
        return getattr(self.issuer, op)(args[0], args[1], key)

    @rule(seconds=st.sampled_from([30, 59, 61, 1800, 3600, 7200, 86400, 100000]))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds=seconds)

    @rule()
    def expire_job(self) -> None:
        now = self.clock.now()
        due_leases = sum(1 for c in self.model.coupons.values() if c.status == "occupied"
                         and c.lease_until is not None and c.lease_until <= now)
        before = {cid: c.status for cid, c in self.model.coupons.items()}
        for cid in list(self.model.coupons):
            self.model.settle(cid, now)
        expired = sum(1 for cid, c in self.model.coupons.items()
                      if c.status == "expired" and before[cid] != "expired")
        report = self.issuer.expire()
        assert (report.released, report.expired) == (due_leases, expired)

    @invariant()
    def agrees_with_model_and_limits(self) -> None:
        if self.db is None:
            return
        now = self.clock.now()
        for cid, expected in self.model.coupons.items():
            stored = self.issuer.coupon(cid)
            assert stored is not None
            assert stored.effective_status(now) == self.model.effective(expected, now)
        counters = dict(self.db.fetchall(
            "SELECT campaign || '/' || bucket, issued FROM issuance_counters"))
        for name, campaign in CAMPAIGNS.items():
            assert counters.get(f"{name}/total", 0) == self.model.issued[name]
            assert self.model.issued[name] <= campaign.total_stock
        for (name, _day), n in self.model.daily.items():
            assert n <= CAMPAIGNS[name].effective_daily_limit
        per_customer = self.db.fetchall(
            "SELECT campaign, customer_id, count(*) FROM coupons GROUP BY campaign, customer_id")
        for name, _customer, n in per_customer:
            assert n <= CAMPAIGNS[name].per_customer_limit

    @invariant()
    def history_is_a_legal_chain(self) -> None:
        if self.db is None:
            return
        rows = self.db.fetchall(
            "SELECT h.coupon_id, h.seq, h.from_status, h.to_status, c.version, c.status "
            "FROM coupon_history h JOIN coupons c ON c.coupon_id = h.coupon_id "
            "ORDER BY h.coupon_id, h.seq")
        chains: dict[str, list[tuple[int, str | None, str]]] = {}
        final: dict[str, tuple[int, str]] = {}
        for cid, seq, src, dst, version, status in rows:
            chains.setdefault(cid, []).append((seq, src, dst))
            final[cid] = (version, status)
        for cid, recorded in chains.items():
            chain = [(1, None, "unused"), *recorded]  # version 1: the issue itself
            assert [seq for seq, _, _ in chain] == list(range(1, len(chain) + 1))
            for (_, _, prev), (_, src, dst) in itertools.pairwise(chain):
                assert src == prev
                check_move(src, dst)
            assert final[cid] == (len(chain), chain[-1][2])
        for cid in self.model.coupons:
            if cid not in chains:  # never moved: still version 1, unused in storage
                assert self.issuer.coupon(cid).version == 1  # type: ignore[union-attr]


def test_state_machine_sqlite(tmp_path: Path) -> None:
    run_state_machine_as_test(
        lambda: IssuanceMachine(lambda: f"sqlite:///{tmp_path / uuid.uuid4().hex}.sqlite"),
        settings=settings(max_examples=100, stateful_step_count=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow]),
    )


@pytest.mark.postgres
def test_state_machine_postgresql(postgres_base_url: str) -> None:
    run_state_machine_as_test(
        lambda: IssuanceMachine(lambda: pg.fresh_schema_url(postgres_base_url, prefix="fsm")),
        settings=settings(max_examples=15, stateful_step_count=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow]),
    )
