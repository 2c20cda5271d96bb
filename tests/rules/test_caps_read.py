"""The caps read only what they weigh: earlier messages of the day's candidates.

:func:`rules.run.decide_for_day` reads the outbox's message counts for the candidates;
with more messages in the window than candidates it binds the candidates' ids and reads
only theirs. Both ways must decide the same (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from rules.run import _TOUCHES, decide_for_day
from serving.db import ServingDB
from tests.rules.conftest import frame, rule_from

D = date(2026, 3, 10)
SEND = datetime(2026, 3, 11, 2, 0)  # D+1 10:00 Shanghai
RULE = ("RULE (name r, owner 'team:x', trigger schedule, templates (t 'hi'), "
        "max_touches_per_day 2, max_touches_per_week 5);\n"
        "TRUE -> touch sms t at event +1d 10:00\n")


def _messages(db: ServingDB, per_customer: dict[int, int]) -> None:
    rows = [(c, SEND, SEND.date()) for c, n in per_customer.items() for _ in range(n)]
    with db.transaction():
        db.executemany(
            "INSERT INTO touch_outbox (message_id, order_id, action_no, rule, channel, "
            "customer_id, text, send_at, send_day, state, attempts) VALUES ((SELECT "
            "coalesce(max(message_id), 0) + 1 FROM touch_outbox), 0, 1, 'other', 'sms', ?, "
            "'x', ?, ?, 'pending', 0)", rows)


def _decisions(db: ServingDB, tmp_path: Path, customers: list[int]) -> dict[int, str]:
    rule = rule_from(tmp_path, RULE)
    with db.transaction():
        decided = decide_for_day(db, rule, frame("r", [(c, "day:1") for c in customers]), D,
                                 None)
    return dict(zip(decided.orders["customer_id"], decided.orders["decision"], strict=True))


def test_a_few_candidates_among_many_messages_are_capped_by_their_own(
    db: ServingDB, tmp_path: Path
) -> None:
    # 200 other customers hold one message each on the send day; customer 1 holds two
    # (the daily cap), customer 2 one, customer 3 none.
    _messages(db, {1: 2, 2: 1, **{c: 1 for c in range(100, 300)}})
    few = _decisions(db, tmp_path, [1, 2, 3])  # 3 candidates < 203 messages: ids staged
    assert few == {1: "capped", 2: "act", 3: "act"}
    many = _decisions(db, tmp_path, [1, 2, 3, *range(1000, 1300)])  # the window read whole
    assert {c: many[c] for c in (1, 2, 3)} == few
    with pytest.raises(Exception, match="kequn_rule_candidates"):  # nothing left behind
        db.fetchall("SELECT * FROM kequn_rule_candidates")


def test_the_candidates_messages_are_found_by_customer_not_by_reading_the_window(
    db: ServingDB,
) -> None:
    """Rules migration 4: the read for a few candidates goes through the outbox's
    (customer, send day) index, not every message of the window."""
    _messages(db, {c: 1 for c in range(1, 2001)})
    db.execute("ANALYZE")
    query = _TOUCHES.format(only=f" AND customer_id IN ({db.ids_source()})")
    params = (D, D + timedelta(days=30), db.ids_param([1, 2, 3]))
    if db.dialect == "sqlite":
        plan = [str(row[-1]) for row in db.fetchall(f"EXPLAIN QUERY PLAN {query}", params)]
    else:
        plan = [str(row[0]) for row in db.fetchall(f"EXPLAIN {query}", params)]
    assert any("touch_outbox_customer_day" in line for line in plan), plan
    counts = sorted((int(c), str(day)[:10], int(n)) for c, day, n in db.fetchall(query, params))
    assert counts == [(c, SEND.date().isoformat(), 1) for c in (1, 2, 3)]
