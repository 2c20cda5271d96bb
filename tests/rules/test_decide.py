"""Deciding a day's orders: holdout, exclusion, first-N, frequency caps, quiet hours,
idempotent re-runs (rules/decide.py, on hand-made candidates)."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from project.rule import holdout_bucket
from rules.decide import decide
from tests.rules.conftest import frame, rule_from

D = date(2026, 3, 10)


def header(extra: str = "", templates: str = "t 'hi {customer_id}'") -> str:
    return (f"RULE (name r, owner 'team:x', trigger schedule, templates ({templates}){extra});\n")


def decided_for(tmp_path: Path, text: str, rows: list[tuple[int, str]], **kw: object):
    rule = rule_from(tmp_path, text)
    return rule, decide(rule, frame("r", rows), D, **kw)  # type: ignore[arg-type]


def send_times(decided) -> list[datetime]:
    return decided.messages["send_at"].to_list()


@pytest.mark.parametrize(("action", "expected_utc", "decision"), [
    # 10:00 Shanghai on D+1 is 02:00 UTC: outside quiet hours, sent as planned.
    ("touch sms t at event +1d 10:00", datetime(2026, 3, 11, 2, 0), "act"),
    # 22:00 on D is quiet: delayed to 09:00 the next morning (01:00 UTC), not dropped.
    ("touch sms t at event 22:00", datetime(2026, 3, 11, 1, 0), "quiet_delayed"),
    # 08:00 is quiet too: delayed to 09:00 the same day.
    ("touch sms t at event +2d 08:00", datetime(2026, 3, 12, 1, 0), "quiet_delayed"),
    # No 'at': as soon as the day's run happens (D+1 00:00), which is quiet: 09:00.
    ("touch sms t", datetime(2026, 3, 11, 1, 0), "quiet_delayed"),
    # A time already past when the day is evaluated moves to the end of the day.
    ("touch sms t at event -3d 12:00", datetime(2026, 3, 11, 1, 0), "quiet_delayed"),
])
def test_quiet_hours_delay_and_never_drop(tmp_path: Path, action: str, expected_utc: datetime,
                                          decision: str) -> None:
    _, decided = decided_for(tmp_path, header() + f"TRUE -> {action}\n", [(1, "day:1")])
    assert send_times(decided) == [expected_utc]
    assert decided.orders["decision"].to_list() == [decision]


def test_quiet_hours_off(tmp_path: Path) -> None:
    _, decided = decided_for(tmp_path, header(", quiet_hours off") + "TRUE -> touch sms t\n",
                             [(1, "day:1")])
    assert send_times(decided) == [datetime(2026, 3, 10, 16, 0)]  # D+1 00:00 Shanghai
    assert decided.orders["decision"].to_list() == ["act"]


def test_templates_render_per_customer(tmp_path: Path) -> None:
    _, decided = decided_for(tmp_path, header() + "TRUE -> touch push t at event +1d 10:00\n",
                             [(7, "day:1"), (8, "day:1")])
    assert decided.messages["text"].to_list() == ["hi 7", "hi 8"]
    assert decided.messages["channel"].to_list() == ["push", "push"]


def test_caps_count_touches_across_rules_per_day_and_week(tmp_path: Path) -> None:
    text = header(", max_touches_per_day 2, max_touches_per_week 3") \
        + "TRUE -> touch sms t at event +1d 10:00\n"
    send_day = date(2026, 3, 11)
    existing = pl.DataFrame({
        "customer_id": [1, 2, 2, 3],
        "send_day": [send_day, date(2026, 3, 6), date(2026, 3, 9), date(2026, 3, 1)],
        "n": [2, 2, 1, 5],
    }, schema_overrides={"customer_id": pl.Int64})
    rows = [(1, "day:1"), (2, "day:1"), (3, "day:1"), (4, "day:a"), (4, "day:b"), (4, "day:c")]
    _, decided = decided_for(tmp_path, text, rows, existing_touches=existing)
    got = dict(zip(decided.orders["event_key"] + ":" + decided.orders["customer_id"].cast(
        pl.Utf8), decided.orders["decision"], strict=True))
    assert got == {
        "day:1:1": "capped",   # 2 already that day: a third passes the daily cap
        "day:1:2": "capped",   # 3 already within the 7 days: a fourth passes the weekly cap
        "day:1:3": "act",      # 5 touches, but 10 days earlier: outside the window
        "day:a:4": "act", "day:b:4": "act",
        "day:c:4": "capped",   # the run's own touches count: the third of the day is capped
    }
    assert sorted(decided.messages["customer_id"].to_list()) == [3, 4, 4]


def test_caps_keep_the_first_order_whose_touches_fit(tmp_path: Path) -> None:
    """Two touches per order and two a day allowed: of a customer's two events that day
    the first order keeps both its touches, the second is capped (not both capped)."""
    text = header(", max_touches_per_day 2") + (
        "TRUE -> touch sms t at event +1d 10:00 && touch push t at event +1d 11:00\n")
    _, decided = decided_for(tmp_path, text, [(1, "day:a"), (1, "day:b"), (2, "day:a")])
    got = dict(zip(decided.orders["event_key"] + ":" + decided.orders["customer_id"].cast(
        pl.Utf8), decided.orders["decision"], strict=True))
    assert got == {"day:a:1": "act", "day:b:1": "capped", "day:a:2": "act"}
    assert decided.messages.height == 4


def test_exclusion_wins_over_holdout_and_first_n_limits(tmp_path: Path) -> None:
    text = header(", first_n 5, holdout 0.5") + "TRUE -> touch sms t at event +1d 10:00\n"
    rows = [(c, "day:1") for c in range(1, 41)]
    _rule, decided = decided_for(tmp_path, text, rows, prior_acts=2,
                                excluded=pl.Series([1, 2, 3], dtype=pl.Int64))
    decision = dict(zip(decided.orders["customer_id"], decided.orders["decision"], strict=True))
    assert [decision[c] for c in (1, 2, 3)] == ["excluded"] * 3
    held = [c for c in range(4, 41) if holdout_bucket("r", c) < 5000]
    assert sorted(c for c, d in decision.items() if d == "control") == held
    acted = [c for c, d in decision.items() if d == "act"]
    free = [c for c in range(4, 41) if c not in held]
    assert acted == free[:3]  # 5 first minus 2 earlier acts, in event order
    assert all(decision[c] == "capped" for c in free[3:])


def test_a_rerun_skips_what_is_ordered(tmp_path: Path) -> None:
    text = header() + "TRUE -> touch sms t at event +1d 10:00\n"
    rows = [(1, "day:1"), (2, "day:1")]
    existing = pl.DataFrame({"customer_id": [1], "event_key": ["day:1"]},
                            schema_overrides={"customer_id": pl.Int64})
    _, decided = decided_for(tmp_path, text, rows, existing_keys=existing)
    assert decided.skipped == 1 and decided.orders["customer_id"].to_list() == [2]


def test_the_ternary_branch_picks_the_actions(tmp_path: Path) -> None:
    rule = rule_from(tmp_path, header() + "TRUE ? touch sms t at event +1d 10:00 "
                     ": touch push t at event +1d 11:00 && touch app_message t at event +1d "
                     "12:00\n")
    rows = frame("r", [(1, "day:1")], branch="else")
    decided = decide(rule, rows, D)
    assert decided.messages["channel"].to_list() == ["push", "app_message"]
    assert decided.messages["action_no"].to_list() == [1, 2]


@settings(max_examples=25, deadline=None)
@given(ratio=st.sampled_from([0.05, 0.1, 0.25, 0.5]), offset=st.integers(0, 10**9))
def test_holdout_share_is_close_to_the_ratio_and_reproducible(tmp_path_factory, ratio: float,
                                                              offset: int) -> None:
    tmp = tmp_path_factory.mktemp("holdout")
    rule = rule_from(tmp, header(f", holdout {ratio}") + "TRUE -> touch sms t at event +1d 10:00\n")
    rows = [(offset + c, "day:1") for c in range(4000)]
    first = decide(rule, frame("r", rows), D)
    again = decide(rule, frame("r", rows), D)
    control = first.orders.filter(pl.col("decision") == "control")["customer_id"].to_list()
    assert control == again.orders.filter(pl.col("decision") == "control")[
        "customer_id"].to_list()
    share = len(control) / len(rows)
    assert abs(share - ratio) < 4 * (ratio * (1 - ratio) / len(rows)) ** 0.5 + 0.005


@settings(max_examples=50, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(1, 6), st.sampled_from(["a", "b", "c"]),
                               st.integers(0, 99)), max_size=30),
       in_order=st.booleans())
def test_a_repeated_event_keeps_its_first_row_sorted_or_not(rows: list, in_order: bool) -> None:
    from rules.decide import _first_of_each_event

    if in_order:  # as a compiled rule returns them (event key, customer); ties stay put
        rows = sorted(rows, key=lambda r: (r[1], r[0]))
    candidates = pl.DataFrame(rows, schema={"customer_id": pl.Int64, "event_key": pl.Utf8,
                                            "payload": pl.Int64}, orient="row")
    expected = candidates.unique(["customer_id", "event_key"], keep="first",
                                 maintain_order=True)
    assert _first_of_each_event(candidates).rows() == expected.rows()
