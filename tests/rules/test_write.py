"""Writing a day's orders and messages (rules/run.py ``decide_and_write``, rules/schema.py
migrations 2 and 3): plans kept once per version and branch, ids numbered in write order,
re-runs at scale add only what is new, and orders written before the reshapings stay
readable and deliverable under the same delivery keys."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rules.run as run_module
import rules.stage as stage_module
from kequn.migrations import apply_migrations
from rules.channels import Message, delivery_key
from rules.decide import branch_has_coupon, decide, plan_json
from rules.dispatch import dispatch, opt_out
from rules.history import orders
from rules.run import decide_and_write
from rules.schema import RULES_MIGRATIONS, STREAM, migrate
from rules.stage import _as_stored
from serving.db import ServingDB, _adapt_datetime, connect, integrity_errors
from tests.rules.conftest import frame, rule_from, write_orders

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
        "outbox": db.fetchall("SELECT message_id, order_id, action_no, channel, customer_id, "
                              "text, send_at, send_day, state FROM touch_outbox "
                              "ORDER BY message_id"),
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
        # numbered in write order (the candidates' order), from 1 in a new database
        assert order.decision == row["decision"] and order.order_id == row["seq"] + 1
        acting = row["decision"] in ("act", "quiet_delayed")
        assert order.actions == (plans[row["branch"]] if acting else [])
    # the plan is stored once per (rule, version, branch), not per order
    assert db.scalar("SELECT count(*) FROM rule_plans") == 2
    assert db.scalar("SELECT count(*) FROM rule_orders WHERE actions IS NOT NULL") == 0
    # each acting order's messages, numbered by the action they come from
    messages = db.fetchall("SELECT message_id, order_id, action_no, channel, customer_id, "
                           "text FROM touch_outbox ORDER BY message_id")
    assert len(messages) == decided.messages.height > 0
    assert [m[0] for m in messages] == list(range(1, len(messages) + 1))
    for _, order_id, number, channel, customer, text in messages:
        order = read[int(customer)]
        assert order.order_id == order_id
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


def test_orders_written_before_the_reshapings_stay_readable_and_deliverable(
        serving_url: str) -> None:
    db = connect(serving_url)
    try:
        apply_migrations(db, STREAM, RULES_MIGRATIONS[:1])
        # rows as the first schema held them: 24-hex-digit order ids, '<order>:<n>' messages
        first, second, later = (hashlib.md5(k.encode()).hexdigest()[:24]
                                for k in ("old|5|loan:1", "old|6|loan:3", "old|8|loan:2"))
        old_actions = [{"action": "issue_coupon", "campaign": "c", "result": "issued",
                        "coupon_id": 7}, {"action": "touch", "channel": "sms",
                                          "template": "t", "message_no": 2}]
        db.execute("INSERT INTO rule_orders (order_id, rule, version_hash, as_of, customer_id, "
                   "event_key, decision, actions, created_at, branch, pending) VALUES "
                   "(?, 'old', 'v1', ?, 6, 'loan:3', 'control', '[]', ?, 'then', 0)",
                   (second, D, datetime(2026, 3, 10, 1)))
        # a later day's order whose key sorts between them: its run is numbered after
        db.execute("INSERT INTO rule_orders (order_id, rule, version_hash, as_of, customer_id, "
                   "event_key, decision, actions, created_at, branch, pending) VALUES "
                   "(?, 'old', 'v2', ?, 8, 'loan:2', 'capped', '[]', ?, 'then', 0)",
                   (later, date(2026, 3, 11), datetime(2026, 3, 11, 1)))
        db.execute("INSERT INTO rule_orders (order_id, rule, version_hash, as_of, customer_id, "
                   "event_key, decision, actions, created_at, branch, pending) VALUES "
                   "(?, 'old', 'v1', ?, 5, 'loan:1', 'act', ?, ?, 'then', 0)",
                   (first, D, json.dumps(old_actions), datetime(2026, 3, 10, 1)))
        for number, state in ((2, "pending"), (3, "failed")):
            db.execute("INSERT INTO touch_outbox (message_id, order_id, rule, channel, "
                       "customer_id, text, send_at, send_day, state, attempts) VALUES "
                       "(?, ?, 'old', 'sms', 5, 'hello', ?, ?, ?, ?)",
                       (f"{first}:{number}", first, datetime(2026, 3, 11, 2), D, state,
                        int(state == "failed")))
        db.execute("INSERT INTO touch_attempts (message_id, attempt, at, worker, ok, detail) "
                   "VALUES (?, 1, ?, 'w', 0, 'down')", (f"{first}:3", datetime(2026, 3, 11, 3)))
        assert migrate(db) == [2, 3, 4]
        # each earlier write is one run, its orders numbered together by unique key;
        # every reference follows
        assert db.fetchall("SELECT run_id, rule, version_hash, as_of, first_order_id, "
                           "last_order_id FROM rule_runs ORDER BY run_id") == [
            (1, "old", "v1", D, 1, 2), (2, "old", "v2", date(2026, 3, 11), 3, 3)]
        read = orders(db, "old", D)
        assert [(o.order_id, o.event_key, o.decision, o.actions) for o in read] == [
            (1, "loan:1", "act", old_actions), (2, "loan:3", "control", [])]
        assert [(o.order_id, o.event_key) for o in orders(db, "old", date(2026, 3, 11))] == [
            (3, "loan:2")]
        assert db.fetchall("SELECT message_id, order_id, action_no, state FROM touch_outbox "
                           "ORDER BY message_id") == [(1, 1, 2, "pending"), (2, 1, 3, "failed")]
        assert db.fetchall("SELECT message_id, attempt, detail FROM touch_attempts") == [
            (2, 1, "down")]
        # the unique key still holds after the reshapings
        with pytest.raises(integrity_errors()), db.transaction():
            db.execute("INSERT INTO rule_order_rows (order_id, run_id, rule, customer_id, "
                       "event_key, decision, branch) VALUES (9, 2, 'old', 5, 'loan:1', "
                       "'act', 'then')")
        sink = Sink()
        report = dispatch(db, {"sms": sink}, now=datetime(2026, 3, 12))
        # delivered under the key it had before: its old message id
        assert report.sent == 1 and [(m.message_id, m.delivery_key) for m in sink.sent] == [
            (1, f"{first}:2")]
        assert db.fetchall("SELECT state, attempts FROM touch_outbox ORDER BY message_id") == [
            ("sent", 1), ("failed", 1)]
    finally:
        db.close()


def test_a_message_is_delivered_under_the_same_key_whoever_wrote_it(
        tmp_path: Path, serving_url: str) -> None:
    rule = rule_from(tmp_path, TERNARY)
    rows = candidates([(c, "day:2026-03-10") for c in (3, 4)])
    keys = []
    for url in (serving_url, f"sqlite:///{tmp_path / 'other.sqlite'}"):
        db = connect(url)
        try:
            migrate(db)
            if not keys:  # ids in the first database do not start at 1
                decide_and_write(db, rule, candidates([(99, "day:2026-03-09")]), D)
            decide_and_write(db, rule, rows, D)
            sink = Sink()
            dispatch(db, {c: sink for c in ("sms", "push", "app_message")},
                     now=datetime(2026, 3, 13))
            keys.append(sorted(m.delivery_key for m in sink.sent
                               if m.customer_id in (3, 4)))
        finally:
            db.close()
    assert keys[0] == keys[1] and len(keys[0]) == 3  # 3: sms + push, 4: app_message
    assert delivery_key("r", 3, "day:2026-03-10", 2) in keys[0]


COUPON_AND_TOUCHES = """\
RULE (name r, owner 'team:x', trigger schedule, holdout 20%, max_touches_per_day 3,
      templates (a 'A {customer_id}: {event_key}', b 'B {customer_id}'));
TRUE ? issue_coupon welcome && touch sms a at event +1d 10:00 && touch push b at event +1d 11:30
     : touch app_message b at event 22:00
"""


def _row_by_row(db: ServingDB, rule, day: date, decided) -> None:
    """The obvious writer, the reference: each decided order and message inserted on its
    own with every value bound (the form the staged write must store identically)."""
    opted = set(db.fetchall("SELECT customer_id, channel FROM touch_opt_out"))
    with db.transaction():
        db.execute("INSERT INTO rule_runs (run_id, rule, version_hash, as_of, created_at, "
                   "first_order_id, last_order_id) VALUES (1, ?, ?, ?, ?, 1, ?)",
                   (rule.name, rule.version_hash, day, datetime(2026, 1, 1),
                    decided.orders.height))
        for o in decided.orders.iter_rows(named=True):
            acting = o["decision"] in ("act", "quiet_delayed")
            coupon = acting and branch_has_coupon(rule, o["branch"])
            db.execute("INSERT INTO rule_order_rows (order_id, run_id, rule, customer_id, "
                       "event_key, decision, actions, branch, pending) "
                       "VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?)",
                       (o["seq"] + 1, rule.name, o["customer_id"], o["event_key"],
                        o["decision"], plan_json(rule, o["branch"]) if coupon else None,
                        o["branch"], int(coupon)))
        for number, m in enumerate(decided.messages.iter_rows(named=True), start=1):
            state = "suppressed" if (m["customer_id"], m["channel"]) in opted else "pending"
            db.execute("INSERT INTO touch_outbox (message_id, order_id, action_no, rule, "
                       "channel, customer_id, text, send_at, send_day, state, attempts) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                       (number, m["seq"] + 1, m["action_no"], rule.name, m["channel"],
                        m["customer_id"], m["text"], m["send_at"], m["send_day"], state))


def _stored(db: ServingDB) -> dict[str, list]:
    """Every written row as stored (SQLite: with each value's storage class), in write
    order; the write time left out."""
    typed = db.dialect == "sqlite"

    def columns(names: str) -> str:
        return ", ".join(f"{c}, typeof({c})" if typed else c for c in names.split(", "))

    orders = columns("order_id, rule, version_hash, as_of, customer_id, event_key, "
                     "decision, actions, branch, pending")
    outbox = columns("message_id, order_id, action_no, rule, channel, customer_id, text, "
                     "send_at, send_day, state, attempts, sent_at")
    return {
        "orders": db.fetchall(f"SELECT {orders} FROM rule_orders "
                              "ORDER BY event_key, customer_id"),
        "outbox": db.fetchall(f"SELECT {outbox} FROM touch_outbox ORDER BY message_id"),
    }


def _staging(monkeypatch: pytest.MonkeyPatch, how: str) -> list[str]:
    """Stage ``how``: scratch files (whole or in parts) or temporary tables; returns the
    list the tables written to scratch files are recorded in."""
    written: list[str] = []
    write = stage_module._write_scratch

    def recording(adbc, path, table, frame):
        written.append(table)
        write(adbc, path, table, frame)

    monkeypatch.setattr(stage_module, "_write_scratch", recording)
    if how == "parts":  # every frame of 10 rows or more in PARTS files
        monkeypatch.setattr(stage_module, "PART_ROWS", 10)
    if how == "temporary":
        monkeypatch.setattr(stage_module, "adbc_sqlite", lambda: None)
    return written


@pytest.mark.parametrize("how", ["scratch", "parts", "temporary"])
def test_the_staged_write_stores_what_the_row_by_row_write_stores(
        tmp_path: Path, serving_url: str, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    # (PostgreSQL stages by COPY either way: every id checks that path there.)
    written = _staging(monkeypatch, how)
    rule = rule_from(tmp_path, COUPON_AND_TOUCHES)
    rows = [(c, k) for c in range(1, 260) for k in ("e:1", "loan:'9',\n\"x\"")]
    db = connect(serving_url)
    try:
        migrate(db)
        opt_out(db, 3, "sms")
        opt_out(db, 7, "app_message")
        decided, suppressed = decide_and_write(db, rule, candidates(rows), D)
        assert set(decided.orders["decision"]) == {"act", "quiet_delayed", "control", "capped"}
        staged = _stored(db)
        for table in ("rule_order_rows", "rule_runs", "touch_outbox"):
            db.execute(f"DELETE FROM {table}")
        _row_by_row(db, rule, D, decided)
        assert _stored(db) == staged
        assert len(staged["orders"]) == len(rows)
        assert len(staged["outbox"]) == decided.messages.height > 0
        assert suppressed == sum(1 for r in staged["outbox"] if "suppressed" in r) > 0
        if db.dialect == "sqlite":
            parts = stage_module.PARTS if how == "parts" else 1
            assert sorted(written) == ([] if how == "temporary"  # two threads: any order
                                       else ["messages"] * parts + ["orders"] * parts)
    finally:
        db.close()


@pytest.mark.parametrize("how", ["scratch", "parts", "temporary"])
@pytest.mark.parametrize("fails_at", ["rule_orders", "touch_outbox"])
def test_a_write_that_fails_leaves_nothing_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, fails_at: str) -> None:
    rule = rule_from(tmp_path, TERNARY)
    rows = [(c, k) for c in range(1, 300) for k in ("e:1", "e:2")]
    scratch_dir = tmp_path / "scratch"
    scratch_dir.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(scratch_dir))
    _staging(monkeypatch, how)
    db = connect(f"sqlite:///{tmp_path / 'serving.sqlite'}")
    try:
        migrate(db)
        if fails_at == "rule_orders":  # an order already there: the insert hits the key
            write_orders(db, "r", D, [(299, "e:2", "act", None, "then", 0)], version="v0",
                         first_id=7)
            monkeypatch.setattr(run_module, "decide_for_day",  # as if nothing were ordered
                                lambda db, rule, frame, day, excluded: decide(rule, frame, day))
            expected: type[BaseException] | tuple = integrity_errors()
        else:  # the process dies after the orders are in, before the messages
            execute = ServingDB.execute

            def dying(self: ServingDB, sql: str, params=None):
                if sql.startswith("INSERT INTO touch_outbox"):
                    assert self.scalar("SELECT count(*) FROM rule_order_rows") == len(rows)
                    raise KeyboardInterrupt
                return execute(self, sql, params)

            monkeypatch.setattr(ServingDB, "execute", dying)
            expected = KeyboardInterrupt
        before = {t: db.fetchall(f"SELECT * FROM {t}")
                  for t in ("rule_order_rows", "rule_runs", "touch_outbox", "rule_versions",
                            "rule_plans")}
        with pytest.raises(expected):
            decide_and_write(db, rule, candidates(rows), D)
        monkeypatch.undo()
        assert {t: db.fetchall(f"SELECT * FROM {t}") for t in before} == before
        assert {r[1] for r in db.fetchall("PRAGMA database_list")} <= {"main", "temp"}
        assert db.fetchall("SELECT name FROM sqlite_temp_master") == []
        # the same write then goes through, and again leaves no scratch file
        monkeypatch.setattr("tempfile.tempdir", str(scratch_dir))
        if fails_at == "touch_outbox":
            decided, _ = decide_and_write(db, rule, candidates(rows), D)
            assert db.scalar("SELECT count(*) FROM touch_outbox") == decided.messages.height
    finally:
        db.close()
    assert list(scratch_dir.iterdir()) == []


@settings(max_examples=50, deadline=None)
@given(st.lists(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1)),
                max_size=20))
def test_times_and_dates_are_staged_as_the_driver_stores_them(values: list[datetime]) -> None:
    frame = pl.DataFrame({"at": values, "day": [v.date() for v in values]},
                         schema={"at": pl.Datetime("us"), "day": pl.Date})
    staged = _as_stored(frame)
    assert staged["at"].to_list() == [_adapt_datetime(v) for v in values]
    assert staged["day"].to_list() == [v.date().isoformat() for v in values]


def test_the_decision_and_state_checks_refuse_unknown_values(db: ServingDB) -> None:
    # SQLite writes them as ORs of equalities (migration 3): the same rule as the IN lists
    order = ("INSERT INTO rule_order_rows (order_id, run_id, rule, customer_id, event_key, "
             "decision, branch) VALUES (?, 1, 'r', ?, 'e', ?, 'then')")
    message = ("INSERT INTO touch_outbox (message_id, order_id, action_no, rule, channel, "
               "customer_id, text, send_at, send_day, state) VALUES (?, 1, 1, 'r', 'sms', 1, "
               "'t', ?, ?, ?)")
    for n, decision in enumerate(("act", "control", "capped", "excluded", "quiet_delayed"), 1):
        db.execute(order, (n, n, decision))
    for n, state in enumerate(("pending", "sent", "failed", "suppressed"), 1):
        db.execute(message, (n, datetime(2026, 3, 11), D, state))
    with pytest.raises(integrity_errors()), db.transaction():
        db.execute(order, (9, 9, "acted"))
    with pytest.raises(integrity_errors()), db.transaction():
        db.execute(message, (9, datetime(2026, 3, 11), D, "queued"))
    if db.dialect == "sqlite":
        assert all(" IN (" not in sql for (sql,) in db.fetchall(
            "SELECT sql FROM sqlite_master WHERE name IN ('rule_order_rows', 'touch_outbox')"))
