"""``Issuer.issue_many`` on SQLite decides the requests that cannot meet together
(:func:`issuance.batch.issue_each`): the same outcomes and the same stored state as
sending each request alone, in order, whatever the requests repeat (customers, keys),
the limits that bind, the budget, the stacking and the keys answered before."""

from __future__ import annotations

import tempfile
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from issuance import approval, batch
from issuance.clock import ManualClock
from issuance.outcome import IdempotencyConflict, Outcome
from issuance.schema import migrate
from issuance.service import Issuer
from project.campaign import CouponTemplate
from serving.db import ServingDB, connect
from tests.issuance.conftest import issued_state, make_campaign, make_eligible, make_issuer

CUSTOMERS = list(range(1, 13))


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, object]:
    customers = st.sampled_from(CUSTOMERS)
    requests = draw(st.lists(st.tuples(st.sampled_from(["wake", "other"]), customers,
                                       st.integers(0, 40)), max_size=40))
    return dict(
        requests=[(c, customer, f"k{key}") for c, customer, key in requests],
        eligible=draw(st.lists(customers, unique=True, min_size=1)),
        stock=draw(st.integers(1, 30)),
        daily=draw(st.none() | st.integers(1, 20)),
        per_customer=draw(st.integers(1, 2)),
        exclusive=draw(st.booleans()),
        budget=draw(st.none() | st.integers(0, 15)),
        earlier=draw(st.lists(customers, unique=True, max_size=4)),
        answered=draw(st.lists(st.tuples(customers, st.integers(0, 40)), max_size=4,
                                unique_by=lambda answer: answer[1])),
        ended=draw(st.integers(0, 9)) == 0,
        outside=draw(st.integers(0, 9)) == 0,
    )


def _setup(url: str, s: dict[str, object]) -> tuple[ServingDB, Issuer]:
    db = connect(url)
    migrate(db)
    make_eligible(db, "wake_up", s["eligible"])  # type: ignore[arg-type]
    make_eligible(db, "other_segment", CUSTOMERS[::2])
    budget = {} if s["budget"] is None else dict(
        template=CouponTemplate("amount_off", Decimal("100")),
        budget=Decimal(s["budget"]) * 100 + 50)  # type: ignore[operator]
    wake = make_campaign(total_stock=s["stock"], daily_limit=s["daily"],
                         per_customer_limit=s["per_customer"],
                         stacking="exclusive" if s["exclusive"] else "stackable", **budget)
    other = make_campaign("other", target_segment="other_segment", total_stock=8,
                          stacking="exclusive")
    clock = ManualClock(datetime(2026, 3, 9, 10, 0))
    issuer = make_issuer(db, clock, wake, other)
    for c in s["earlier"]:  # type: ignore[attr-defined]
        issuer.issue("wake", c, f"earlier-{c}")
    clock.set(datetime(2026, 3, 10, 10, 0))
    for c, key in s["answered"]:  # type: ignore[attr-defined]
        issuer.issue("wake", c, f"k{key}")  # the key's first request: this one
    if s["ended"]:
        approval.end(db, wake, "ops.li")
    if s["outside"]:
        clock.set(datetime(2028, 3, 10, 10, 0))
    return db, issuer


def _state(db: ServingDB) -> tuple[object, ...]:
    # set-based issues write their ledger entries in coupon-id order, single ones in turn
    return issued_state(db, ledger_order="coupon_id, kind")


def _one_by_one(issuer: Issuer, requests: list[tuple[str, int, str]]
                ) -> list[Outcome] | IdempotencyConflict:
    outcomes = []
    for campaign, customer, key in requests:
        try:
            outcomes.append(issuer.issue(campaign, customer, key))
        except IdempotencyConflict as conflict:
            return conflict
    return outcomes


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(s=scenarios())
# the stock runs out inside a run: that campaign's requests go one by one
@example(s=dict(requests=[("wake", c, f"k{c}") for c in (1, 2, 3, 4)], eligible=CUSTOMERS,
                stock=2, daily=None, per_customer=1, exclusive=False, budget=None,
                earlier=[], answered=[], ended=False, outside=False))
# a customer twice, across the two (exclusive) campaigns, and a key sent twice
@example(s=dict(requests=[("other", 2, "k1"), ("wake", 2, "k2"), ("wake", 4, "k2"),
                          ("wake", 6, "k3")], eligible=CUSTOMERS, stock=9, daily=None,
                per_customer=1, exclusive=False, budget=None, earlier=[], answered=[],
                ended=False, outside=False))
def test_issue_many_equals_each_request_alone(tmp_path: Path, s: dict[str, object]) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    many_db, many = _setup(f"sqlite:///{folder / 'many.sqlite'}", s)
    alone_db, alone = _setup(f"sqlite:///{folder / 'alone.sqlite'}", s)
    requests: list[tuple[str, int, str]] = s["requests"]  # type: ignore[assignment]
    before = _state(many_db)
    expected = _one_by_one(alone, requests)
    with mock.patch.object(batch, "SET_BASED_FROM", 1):  # every run set-based
        if isinstance(expected, IdempotencyConflict):
            with pytest.raises(IdempotencyConflict):
                many.issue_many(requests)
            assert _state(many_db) == before  # one transaction: nothing kept
        else:
            assert many.issue_many(requests) == expected
            assert _state(many_db) == _state(alone_db)
            # sent again: every result replays, or is decided again the same way (a key
            # first refused not_live may since be another campaign's coupon: a conflict)
            again = _one_by_one(alone, requests)
            if isinstance(again, IdempotencyConflict):
                with pytest.raises(IdempotencyConflict):
                    many.issue_many(requests)
            else:
                assert many.issue_many(requests) == again
                assert _state(many_db) == _state(alone_db)
    many_db.close()
    alone_db.close()


def test_a_rules_worth_of_requests_is_decided_in_a_few_statements(db: ServingDB,
                                                                    clock: ManualClock
                                                                    ) -> None:
    """500 new customers of one campaign: one set-based decision, not 500 snapshots."""
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL sends each request alone")
    make_eligible(db, "wake_up", range(1, 501))
    issuer = make_issuer(db, clock, make_campaign(total_stock=1000))
    statements: list[str] = []
    execute = db.execute

    def counted(sql: str, params: object = None):
        statements.append(sql)
        return execute(sql, params)

    with mock.patch.object(db, "execute", counted):
        outcomes = issuer.issue_many([("wake", c, f"r{c}") for c in range(1, 501)])
    assert all(o.ok and not o.replayed for o in outcomes)
    assert len({o.coupon_id for o in outcomes}) == 500
    assert len(statements) < 40
    assert db.scalar("SELECT issued FROM issuance_counters WHERE bucket = 'total'") == 500
