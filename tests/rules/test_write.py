"""Writing a day's orders and messages (rules/run.py ``decide_and_write``, rules/schema.py
migration 2): plans kept once per version and branch, re-runs at scale add only what is
new, and orders written before the reshaping stay readable and deliverable."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kequn.migrations import apply_migrations
from rules.channels import Message
from rules.decide import plan_json
from rules.dispatch import dispatch, opt_out
from rules.history import orders
from rules.run import decide_and_write
from rules.schema import RULES_MIGRATIONS, STREAM, migrate
from serving.db import INTEGRITY_ERRORS, ServingDB, connect
from tests.rules.conftest import frame, rule_from

D = date(2026, 3, 10)
TERNARY = """\
RULE (name r, owner 'team:x', trigger schedule, holdout 20%, max_touches_per_day 2,
      templates (a 'A {customer_id}', b 'B {customer_id}'));
TRUE ? touch sms a at event +1d 10:00 && touch push b at event +1d 11:00
     : touch app_message b at event 22:00
"""


class Sink:
    def __init__(self) -> None:
        self.sent: list[Message] = []

    def send(self, message: Message) -> None:
        self.sent.append(message)


def candidates(rows: list[tuple[int, str]]):
    """Candidate rows in the compiled query's order (event key, customer); the condition
    is taken to hold for customers divisible by 3 (``then``), else the ``else`` branch."""
    rows = sorted(set(rows), key=lambda r: (r[1], r[0]))
    branch = ["then" if c % 3 == 0 else "else" for c, _ in rows]
    return frame("r", rows).with_columns(pl.Series("branch", branch, dtype=pl.Utf8))


def snapshot(db: ServingDB) -> dict[str, list]:
    return {
        "orders": db.fetchall("SELECT order_id, rule, version_hash, as_of, customer_id, "
                              "event_key, decision, actions, branch, pending FROM rule_orders "
                              "ORDER BY order_id"),
        "outbox": db.fetchall("SELECT id, message_id, order_id, channel, customer_id, text, "
                              "send_at, send_day, state FROM touch_outbox ORDER BY id"),
    }


def test_acting_orders_read_back_their_branch_plan(tmp_path: Path, db: ServingDB) -> None:
    rule = rule_from(tmp_path, TERNARY)
    rows = [(c, "day:2026-03-10") for c in range(1, 200)]
    decided, suppressed = decide_and_write(db, rule, candidates(rows), D)
    assert suppressed == 0
    plans = {b: json.loads(plan_json(rule, b)) for b in ("then", "else")}
    assert [p["channel"] for p in plans["then"]] == ["sms", "push"]
    read = {o.customer_id: o for o in orders(db, rule.name, D)}
    assert len(read) == 199
    for row in decided.orders.iter_rows(named=True):
        order = read[row["customer_id"]]
        assert order.decision == row["decision"] and order.order_id == row["order_id"]
        acting = row["decision"] in ("act", "quiet_delayed")
        assert order.actions == (plans[row["branch"]] if acting else [])
    # the plan is stored once per (rule, version, branch), not per order
    assert db.scalar("SELECT count(*) FROM rule_plans") == 2
    assert db.scalar("SELECT count(*) FROM rule_orders WHERE actions IS NOT NULL") == 0
    # each acting order's messages, numbered by the action they come from
    messages = db.fetchall("SELECT message_id, order_id, channel, customer_id, text "
                           "FROM touch_outbox ORDER BY message_id")
    assert len(messages) == decided.messages.height > 0
    for message_id, order_id, channel, customer, text in messages:
        order = read[int(customer)]
        number = int(message_id.rsplit(":", 1)[1])
        assert message_id == f"{order_id}:{number}" and order.order_id == order_id
        assert order.actions[number - 1]["channel"] == channel
        template = order.actions[number - 1]["template"]
        assert text == f"{template.upper()} {customer}"


def test_an_opted_out_customer_gets_suppressed_messages_at_write(
        tmp_path: Path, db: ServingDB) -> None:
    rule = rule_from(tmp_path, TERNARY)
    opt_out(db, 6, "push")
    opt_out(db, 7, "app_message")
    _, suppressed = decide_and_write(db, rule, candidates([(6, "k"), (7, "k"), (9, "k")]), D)
    states = dict(((int(c), str(ch)), str(s)) for c, ch, s in db.fetchall(
        "SELECT customer_id, channel, state FROM touch_outbox"))
    expected_suppressed = {k for k in ((6, "push"), (7, "app_message")) if k in states}
    assert suppressed == len(expected_suppressed)
    assert {k for k, s in states.items() if s == "suppressed"} == expected_suppressed
    assert all(s == "pending" for k, s in states.items() if k not in expected_suppressed)


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.sets(st.tuples(st.integers(1, 3000), st.sampled_from(["e:1", "e:2"])),
                     max_size=400),
       more=st.sets(st.tuples(st.integers(1, 3000), st.sampled_from(["e:1", "e:2", "e:3"])),
                    max_size=400))
def test_rerunning_with_the_same_or_more_candidates_adds_only_the_new(
        tmp_path: Path, first: set, more: set) -> None:
    rule = rule_from(tmp_path, TERNARY)
    db = connect("sqlite:///:memory:")
    migrate(db)
    try:
        decide_and_write(db, rule, candidates(list(first)), D)
        before = snapshot(db)
        decided, _ = decide_and_write(db, rule, candidates(list(first)), D)
        assert decided.orders.is_empty() and decided.skipped == len(first)
        assert snapshot(db) == before
        decided, _ = decide_and_write(db, rule, candidates(list(first | more)), D)
        after = snapshot(db)
        # nothing written before changed; exactly the new keys were added
        assert set(before["orders"]) <= set(after["orders"])
        assert set(before["outbox"]) <= set(after["outbox"])
        keys = {(int(c), str(k)) for _, _, _, _, c, k, *_ in after["orders"]}
        assert keys == first | more and len(after["orders"]) == len(first | more)
        assert decided.orders.height == len(more - first)
        # the per-day cap (2) holds per customer across both writes
        per_day = db.fetchall("SELECT customer_id, send_day, count(*) FROM touch_outbox "
                              "GROUP BY customer_id, send_day HAVING count(*) > 2")
        assert per_day == []
        assert snapshot(db) == after
        decide_and_write(db, rule, candidates(list(first | more)), D)
        assert snapshot(db) == after
    finally:
        db.close()


def test_orders_written_before_the_reshaping_stay_readable_and_deliverable(
        serving_url: str) -> None:
    db = connect(serving_url)
    try:
        apply_migrations(db, STREAM, RULES_MIGRATIONS[:1])
        old_actions = [{"action": "issue_coupon", "campaign": "c", "result": "issued",
                        "coupon_id": 7}, {"action": "touch", "channel": "sms",
                                          "template": "t", "message_no": 2}]
        db.execute("INSERT INTO rule_orders (order_id, rule, version_hash, as_of, customer_id, "
                   "event_key, decision, actions, created_at, branch, pending) VALUES "
                   "('o1', 'old', 'v1', ?, 5, 'loan:1', 'act', ?, ?, 'then', 0)",
                   (D, json.dumps(old_actions), datetime(2026, 3, 10, 1)))
        db.execute("INSERT INTO rule_orders (order_id, rule, version_hash, as_of, customer_id, "
                   "event_key, decision, actions, created_at, branch, pending) VALUES "
                   "('o2', 'old', 'v1', ?, 6, 'loan:2', 'control', '[]', ?, 'then', 0)",
                   (D, datetime(2026, 3, 10, 1)))
        db.execute("INSERT INTO touch_outbox (message_id, order_id, rule, channel, customer_id, "
                   "text, send_at, send_day, state, attempts) VALUES ('o1:2', 'o1', 'old', "
                   "'sms', 5, 'hello', ?, ?, 'pending', 0)", (datetime(2026, 3, 11, 2), D))
        assert migrate(db) == [2]
        read = orders(db, "old", D)
        assert [(o.order_id, o.decision, o.actions) for o in read] == [
            ("o1", "act", old_actions), ("o2", "control", [])]
        # the unique key still holds after the reshaping
        with pytest.raises(INTEGRITY_ERRORS), db.transaction():
            db.execute("INSERT INTO rule_orders (order_id, rule, version_hash, as_of, "
                       "customer_id, event_key, decision, created_at, branch) VALUES "
                       "('o9', 'old', 'v2', ?, 5, 'loan:1', 'act', ?, 'then')",
                       (D, datetime(2026, 3, 12)))
        sink = Sink()
        report = dispatch(db, {"sms": sink}, now=datetime(2026, 3, 12))
        assert report.sent == 1 and [m.message_id for m in sink.sent] == ["o1:2"]
        assert db.fetchone("SELECT state, attempts FROM touch_outbox") == ("sent", 1)
    finally:
        db.close()
