"""Running rules on a generated warehouse: exclusion and priority between rules, idempotent
re-runs, opt-outs at write time, versions (rules/run.py, rules/history.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kequn.settings import REPO_ROOT
from plan import compile_project
from project.loader import load_project
from rules.history import decision_counts, versions
from rules.run import preview_rule, run_rule
from serving.db import ServingDB
from tests.rules.conftest import DAY2
from warehouse.db import connect

pytestmark = pytest.mark.slow

GRANTED = """\
RULE (name granted_first, owner 'team:x', trigger schedule, exclusion_group daily,
      priority 10, templates (t 'limit {credit_limit}'));
credit_granted -> touch sms t at event +1d 10:00
"""
EVERYONE = """\
RULE (name everyone, owner 'team:x', trigger schedule, exclusion_group daily, priority 1,
      holdout 20%, templates (t 'hello {customer_id}'));
TRUE -> touch app_message t at event +1d 11:00
"""


@pytest.fixture
def plan(tmp_path: Path):
    root = tmp_path / "sql"
    shutil.copytree(REPO_ROOT / "sql", root)
    (root / "rules" / "granted_first.sql").write_text(GRANTED)
    (root / "rules" / "everyone.sql").write_text(EVERYONE)
    project = load_project(root)
    assert project.problems() == []
    return compile_project(project)


@pytest.mark.parametrize("order", [("granted_first", "everyone"), ("everyone", "granted_first")])
def test_exclusion_group_the_higher_priority_wins_whatever_runs_first(
        built: Path, db: ServingDB, plan, order: tuple[str, str]) -> None:
    con = connect(built, read_only=True)
    group = list(plan.rules.values())
    try:
        for name in order:
            run_rule(con, db, None, plan.rules[name], DAY2, group=group)
        granted = {int(c) for (c,) in con.execute(
            "SELECT customer_id FROM tags.customer_tags WHERE as_of = ? AND credit_granted",
            [DAY2]).fetchall()}
    finally:
        con.close()
    rows = db.fetchall("SELECT rule, customer_id, decision FROM rule_orders")
    first = {int(c) for r, c, d in rows if r == "granted_first"}
    excluded = {int(c) for r, c, d in rows if r == "everyone" and d == "excluded"}
    assert first == granted and excluded == granted and granted
    everyone = [(int(c), d) for r, c, d in rows if r == "everyone" and d != "excluded"]
    assert everyone and not {c for c, _ in everyone} & granted
    control = sum(1 for _, d in everyone if d == "control") / len(everyone)
    assert 0.15 < control < 0.25  # holdout 20% of the customers left to the rule


def test_a_rerun_changes_nothing_and_versions_are_kept(built: Path, db: ServingDB, plan,
                                                        tmp_path: Path) -> None:
    con = connect(built, read_only=True)
    compiled = plan.rules["everyone"]
    try:
        first = run_rule(con, db, None, compiled, DAY2)
        snapshot = db.fetchall("SELECT order_id, decision, actions FROM rule_orders "
                               "ORDER BY order_id")
        outbox = db.scalar("SELECT count(*) FROM touch_outbox")
        again = run_rule(con, db, None, compiled, DAY2)
        assert again.decisions == {} and again.already_ordered == first.candidates
        assert db.fetchall("SELECT order_id, decision, actions FROM rule_orders "
                           "ORDER BY order_id") == snapshot
        assert db.scalar("SELECT count(*) FROM touch_outbox") == outbox
        # A changed file is a new version; its re-run of the day still adds nothing.
        root = tmp_path / "sql"
        (root / "rules" / "everyone.sql").write_text(EVERYONE.replace("11:00", "12:00"))
        changed = compile_project(load_project(root)).rules["everyone"]
        run_rule(con, db, None, changed, DAY2)
        preview = preview_rule(con, db, changed, DAY2)
    finally:
        con.close()
    assert preview.decisions == {} and preview.already_ordered == first.candidates
    assert db.fetchall("SELECT order_id, decision, actions FROM rule_orders "
                       "ORDER BY order_id") == snapshot
    found = versions(db, "everyone")
    assert [v.version_hash for v in found] == [compiled.rule.version_hash,
                                               changed.rule.version_hash]
    assert found[0].orders == first.candidates and found[1].orders == 0
    assert "-TRUE -> touch app_message t at event +1d 11:00" in found[1].diff
    assert "+TRUE -> touch app_message t at event +1d 12:00" in found[1].diff
    assert sum(decision_counts(db, "everyone", DAY2).values()) == first.candidates


def test_opted_out_customers_get_suppressed_messages(built: Path, db: ServingDB, plan) -> None:
    db.execute("INSERT INTO touch_opt_out (customer_id, channel, created_at) "
               "VALUES (5, 'app_message', '2026-01-01 00:00:00')")
    con = connect(built, read_only=True)
    try:
        report = run_rule(con, db, None, plan.rules["everyone"], DAY2)
    finally:
        con.close()
    state = db.scalar("SELECT state FROM touch_outbox WHERE customer_id = 5")
    control = db.scalar("SELECT decision FROM rule_orders WHERE customer_id = 5")
    assert state == "suppressed" or control == "control"
    assert report.suppressed == (1 if state == "suppressed" else 0)
