"""The RULE kind: parsing, the binary and ternary forms, and located errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlglot

from kequn.errors import KequnError
from kequn.settings import REPO_ROOT
from project.loader import load_project, read_definition
from project.rule import Rule, holdout_bucket

GOOD = """\
RULE (
  name big_loans,
  owner 'team:marketing',
  trigger drawdown,
  priority 3,
  exclusion_group loans,
  first_n 100,
  holdout 5%,
  quiet_hours '22:00-08:30',
  templates (thanks 'Thanks for {principal} on {due_date}, customer {customer_id}'),
);
-- a comment with -> and ? inside
principal >= 5000 AND (loan_channel = 'APP' OR drawn)
  ? touch sms thanks at due_date -1d 09:30 && issue_coupon repayment_interest_free
  : nothing
"""


def project_with(tmp_path: Path, text: str, name: str = "r.sql") -> tuple[Path, object]:
    """The repository's definitions plus one rule file; (its path, the project)."""
    root = tmp_path / "sql"
    shutil.copytree(REPO_ROOT / "sql", root)
    path = root / "rules" / name
    path.write_text(text, encoding="utf-8")
    return path, load_project(root)


def test_a_rule_reads_with_every_setting(tmp_path: Path) -> None:
    _path, project = project_with(tmp_path, GOOD)
    assert project.problems("rule") == []
    rule: Rule = project.rules["big_loans"]
    assert rule.trigger.kind == "drawdown" and rule.priority == 3
    assert (rule.exclusion_group, rule.first_n, rule.holdout) == ("loans", 100, 0.05)
    assert rule.quiet_hours == ((22, 0), (8, 30))
    assert [a.describe() for a in rule.then] == [
        "touch sms thanks at due_date -1d 09:30", "issue_coupon repayment_interest_free"]
    assert rule.otherwise == ()
    assert rule.condition.sql() == "principal >= 5000 AND (loan_channel = 'APP' OR drawn)"
    assert rule.tags == ("drawn",)
    assert rule.placeholders == ("principal", "due_date", "customer_id")
    assert rule.campaigns == ("repayment_interest_free",)


def test_the_shipped_rules_load() -> None:
    project = load_project(REPO_ROOT / "sql")
    assert project.problems("rule") == []
    assert set(project.rules) >= {"drawdown_repayment_coupon", "wake_up_touch"}
    example = project.rules["drawdown_repayment_coupon"]
    assert example.trigger.kind == "drawdown" and example.otherwise is None
    assert [a.describe() for a in example.then] == [
        "issue_coupon repayment_interest_free", "touch sms repay_sms at due_date 10:00",
        "touch push repay_push at due_date 10:00"]
    assert project.rules["wake_up_touch"].holdout == pytest.approx(0.1)


HEADER = "RULE (name r, owner 'team:x', trigger {trigger}, templates (t 'hi {{{ph}}}'));\n"

BAD = [
    # (trigger, placeholder, body, the error)
    ("drawdwn", "principal", "TRUE -> touch sms t",
     "r.sql:1:39: unknown trigger 'drawdwn' (triggers: drawdown, first_drawdown, "
     "first_drawdown_in_campaign, credit_granted, repayment, installment_due, segment, schedule)"),
    ("drawdown", "principal", "TRUE -> touch fax t",
     "r.sql:2:15: unknown channel 'fax' (channels: sms, wechat, app_message, app_slot, "
     "telemarketing, push)"),
    ("drawdown", "principal", "TRUE -> touch sms nope",
     "r.sql:2:9: unknown template 'nope'"),
    ("drawdown", "princpal", "TRUE -> touch sms t",
     "r.sql:1:66: unknown placeholder '{princpal}' in template 't' (tags and the drawdown "
     "event's fields: loan_id, principal, term_months, loan_channel, asset_party, "
     "funding_party, due_date, amount_due)"),
    ("drawdown", "principal", "principl > 1 -> touch sms t",
     "r.sql:2:1: unknown tag 'principl' (tags and the drawdown event's fields: loan_id, "
     "principal, term_months, loan_channel, asset_party, funding_party, due_date, amount_due)"),
    ("drawdown", "principal", "principal -> touch sms t",
     "r.sql:2:1: 'principal' is a decimal value, not a condition (compare it, e.g. "
     "principal > 0)"),
    ("drawdown", "principal", "TRUE touch sms t",
     "r.sql:2:1: expected '->' (CONDITION -> ACTIONS) or '?' (CONDITION ? ACTIONS : ACTIONS) "
     "in the rule"),
    ("drawdown", "principal", "TRUE -> issue_coupon no_such_campaign",
     "r.sql:2:22: unknown campaign 'no_such_campaign'"),
    ("segment nowhere", "customer_id", "TRUE -> touch sms t",
     "r.sql:1:39: unknown segment 'nowhere'"),
    ("segment wake_up", "customer_id", "TRUE -> touch sms t at due_date",
     "r.sql:2:9: 'at due_date' needs a trigger with a due date (drawdown, repayment, "
     "installment_due...), not segment"),
    ("drawdown", "principal", "TRUE ? touch sms t",
     "r.sql:2:6: a rule with '?' needs ': ACTIONS' for the other case"),
    ("drawdown", "principal", "TRUE -> send sms t",
     "r.sql:2:9: unknown action 'send' (issue_coupon, touch or nothing)"),
]


@pytest.mark.parametrize(("trigger", "placeholder", "body", "error"), BAD,
                         ids=[b[3].split(": ", 1)[1][:30] for b in BAD])
def test_bad_rules_give_located_errors(tmp_path: Path, trigger: str, placeholder: str,
                                       body: str, error: str) -> None:
    text = HEADER.format(trigger=trigger, ph=placeholder) + body + "\n"
    path, project = project_with(tmp_path, text)
    problems = [e.headline() for e in project.problems("rule")]
    assert problems, "no error reported"
    assert problems[0].replace(str(path), "r.sql").startswith(error), problems
    assert "r" not in project.rules and ("rule", "r") in project.broken


def test_a_rule_over_a_broken_campaign_waits_for_it(tmp_path: Path) -> None:
    root = tmp_path / "sql"
    shutil.copytree(REPO_ROOT / "sql", root)
    campaign = root / "campaigns" / "repayment_interest_free.yaml"
    campaign.write_text(campaign.read_text().replace("type: drawdown", "type: drawdwn"))
    project = load_project(root)
    broken = project.broken[("rule", "drawdown_repayment_coupon")]
    assert broken.errors == () and broken.upstream == (("campaign", "repayment_interest_free"),)
    assert "wake_up_touch" in project.rules


def test_read_definition_raises_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "r.sql"
    path.write_text("RULE (name r, owner 'team:x', trigger drawdown, priority high);\n"
                    "TRUE -> touch fax t\n")
    with pytest.raises(KequnError) as caught:
        read_definition(path, "rule")
    text = caught.value.render()
    assert "r.sql:1:58: 'priority' must be a whole number, not 'high'" in text
    assert "r.sql:2:15: unknown channel 'fax'" in text


def test_holdout_bucket_matches_the_compiled_sql() -> None:
    from plan.rules import holdout_bucket_sql

    expression = holdout_bucket_sql("wake_up_touch").sql("duckdb").replace("ev.", "")
    import duckdb

    got = duckdb.sql(f"SELECT customer_id, {expression} FROM range(1, 2001) AS r(customer_id)"
                     ).fetchall()
    assert all(bucket == holdout_bucket("wake_up_touch", c) for c, bucket in got)
    assert sqlglot.parse_one(expression, read="duckdb") is not None
