"""Approval, budget, ledger, usable coupons, void and the audit log through the command line.

The audit test runs every mutating command once and checks that each leaves exactly one
``audit_log`` entry (and a refused one none).
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

import warehouse.db as wh
from cli.main import app
from serving import audit
from serving.db import connect
from tests.cli.tables import table
from tests.serving.conftest import MEMBERS_DDL, set_members

SEGMENT = """\
SEGMENT (name vip, kind sql, owner 'team:growth', sync on);
SELECT customer_id FROM raw.customers
"""
PAID = """\
name: paid
type: drawdown
owner: team:growth
target_segment: vip
window_start: 2020-01-01
window_end: 2035-12-31
amount_off: 100
validity_starts_after_days: 0
validity_days: 30
total_stock: 100
stacking: stackable
budget: 250
activity_scope: first_drawdown
"""
ROLES = """\
activity_approvers: [ann]
budget_approvers: [bob]
operators: [olga]
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    project = tmp_path / "project"
    for folder in ("segments", "campaigns"):
        (project / folder).mkdir(parents=True)
    (project / "segments" / "vip.sql").write_text(SEGMENT)
    (project / "campaigns" / "paid.yaml").write_text(PAID)
    (project / "campaigns" / "free.yaml").write_text(
        PAID.replace("name: paid", "name: free").replace("budget: 250\n", ""))
    (project / "roles.yaml").write_text(ROLES)
    warehouse = tmp_path / "w.duckdb"
    serving = f"sqlite:///{tmp_path / 'serving.sqlite'}"
    monkeypatch.setenv("KEQUN_PROJECT_DIR", str(project))
    monkeypatch.setenv("KEQUN_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("KEQUN_SERVING_URL", serving)
    monkeypatch.setenv("KEQUN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("KEQUN_USER", raising=False)
    con = wh.connect(warehouse)
    con.execute(MEMBERS_DDL)
    set_members(con, "vip", date(2024, 3, 1), range(5))
    con.close()
    return serving


def kequn(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def count(url: str) -> int:
    with connect(url) as db:
        audit.migrate(db)
        return int(db.scalar("SELECT count(*) FROM audit_log"))


def test_every_mutating_command_leaves_exactly_one_entry(env: str) -> None:
    def once(*args: str, entries: int = 1) -> str:
        before = count(env)
        code, out, err = kequn(*args)
        assert code == 0, (args, out, err)
        assert count(env) - before == entries, args
        return out

    def refused(*args: str, message: str) -> None:
        before = count(env)
        code, _, err = kequn(*args)
        assert code == 1 and message in err, (args, err)
        assert count(env) == before

    once("--as", "ops.li", "sync", "vip", "--as-of", "2024-03-01", "--force")
    once("--as", "maker", "campaigns", "submit", "paid")
    refused("--as", "maker", "campaigns", "approve", "paid", "activity",
            message="maker submitted campaign 'paid' and cannot approve its activity")
    refused("--as", "bob", "campaigns", "approve", "paid", "activity",
            message="bob may not approve a campaign's activity")
    refused("campaigns", "approve", "paid", "activity", message="--as USER")
    once("--as", "ann", "campaigns", "approve", "paid", "activity")
    refused("coupons", "issue", "paid", "1", "--key", "early", message="not_live")
    once("--as", "bob", "campaigns", "approve", "paid", "budget")
    once("--as", "maker", "campaigns", "launch", "paid")
    # Issues are counted by the ledger, not audited. Budget 250 holds two 100.00 coupons.
    code, out, _ = kequn("coupons", "issue", "paid", "1", "--key", "k1")
    coupon = out.split()[2]
    assert code == 0 and count(env) == 7 - 2  # 5 entries so far
    assert kequn("coupons", "issue", "paid", "2", "--key", "k2")[0] == 0
    code, _, err = kequn("coupons", "issue", "paid", "3", "--key", "k3")
    assert code == 1 and "budget_exhausted" in err
    refused("--as", "ann", "coupons", "void", coupon, "--reason", "x", "--key", "v0",
            message="ann may not void coupons")
    once("--as", "olga", "coupons", "void", coupon, "--reason", "wrong customer", "--key", "v1")
    once("--as", "maker", "segments", "share", "vip", "team:risk")
    once("--as", "maker", "segments", "share", "vip", "team:risk", "--remove")
    once("segments", "favorite", "vip", "--user", "ann")
    once("segments", "favorite", "vip", "--user", "ann", "--remove")
    once("--as", "maker", "campaigns", "end", "paid")
    once("--as", "maker", "campaigns", "submit", "free")
    once("--as", "ann", "campaigns", "reject", "free", "--reason", "not now")
    code, out, _ = kequn("audit", "--json")
    log = [json.loads(line) for line in out.splitlines()]
    assert [(e["user"], e["action"]) for e in log] == [
        ("ops.li", "sync_force"), ("maker", "campaign_submit"),
        ("ann", "campaign_approve_activity"), ("bob", "campaign_approve_budget"),
        ("maker", "campaign_launch"), ("olga", "coupon_void"), ("maker", "segment_share"),
        ("maker", "segment_unshare"), ("ann", "segment_favorite"),
        ("ann", "segment_unfavorite"), ("maker", "campaign_end"),
        ("maker", "campaign_submit"), ("ann", "campaign_reject")]
    assert log[5]["object"] == f"coupon:{coupon}" and log[5]["detail"] == "wrong customer"
    code, out, _ = kequn("audit", "--object", "campaign:paid")
    assert code == 0 and table(out).column("action") == [
        "campaign_submit", "campaign_approve_activity", "campaign_approve_budget",
        "campaign_launch", "campaign_end"]


def test_plan_usable_ledger_and_counters(env: str) -> None:
    kequn("sync", "vip", "--as-of", "2024-03-01")
    code, out, _ = kequn("campaigns", "plan", "paid", "--json")
    plan = json.loads(out)
    # 5 eligible, one coupon each, the budget 250 covers two worst cases of 100.00.
    assert (plan["eligible"], plan["issuable"], plan["max_reduction"],
            plan["worst_case_cost"]) == (5, 2, "100.00", "200.00")
    assert plan["expected_use"] == 1  # 2 * 0.3 = 0.6 -> 1
    for user, args in (("maker", ("submit", "paid")), ("ann", ("approve", "paid", "activity")),
                       ("bob", ("approve", "paid", "budget")), ("maker", ("launch", "paid"))):
        assert kequn("--as", user, "campaigns", *args)[0] == 0
    code, out, _ = kequn("coupons", "issue", "paid", "1", "--key", "k1")
    coupon = out.split()[2]
    terms = "principal=10000,annual_rate=0.18,term=12,start=2026-03-10"
    code, out, _ = kequn("coupons", "usable", "1", "--loan-context",
                         f"first_drawdown=false,{terms}")
    assert code == 0 and table(out).rows == [
        [coupon, "-", "-", "-", "no: activity_out_of_scope", "-"]]
    code, out, _ = kequn("coupons", "usable", "1", "--loan-context",
                         f"first_drawdown=true,{terms}", "--json")
    assert json.loads(out)["best"] == [coupon]
    assert json.loads(out)["usable"][0]["reduction"] == "100.00"
    code, _, err = kequn("coupons", "occupy", coupon, "--loan", "L1", "--key", "o0",
                         "--loan-context", f"first_drawdown=no,{terms}")
    assert code == 1 and "activity_out_of_scope" in err
    code, _, err = kequn("coupons", "occupy", coupon, "--loan", "L1", "--key", "o1",
                         "--loan-context", "bogus=1")
    assert code == 2 and "unknown loan context key 'bogus'" in err
    assert kequn("coupons", "occupy", coupon, "--loan", "L1", "--key", "o2",
                 "--loan-context", f"first_drawdown=yes,{terms}")[0] == 0
    assert kequn("coupons", "confirm", coupon, "--loan", "L1", "--key", "c1")[0] == 0
    code, out, _ = kequn("campaigns", "counters", "paid")
    assert table(out).record()["budget"] == "250.00: reserved 0.00, booked 100.00"
    code, out, _ = kequn("campaigns", "ledger", "paid")
    ledger = table(out)
    assert list(zip(ledger.column("kind"), ledger.column("amount"), strict=True)) == [
        ("reserve", "100.00"), ("book", "100.00"), ("release", "100.00")]
    code, out, _ = kequn("trial", "--principal", "10000", "--annual-rate", "0.18", "--term",
                         "12", "--method", "equal_installment", "--start", "2026-03-10",
                         "--coupon", coupon, "--json")
    assert json.loads(out)["totals"]["reduction"] == "100.00"
    code, out, _ = kequn("campaigns", "state", "paid")
    state = table(out).record()
    assert (state["state"], state["submitted by"], state["activity approved by"],
            state["budget approved by"], state["issues"]) == ("live", "maker", "ann", "bob",
                                                              "yes")
    # A stackable coupon of another campaign combines with the one loan L1 already holds.
    for user, args in (("maker", ("submit", "free")), ("ann", ("approve", "free", "activity")),
                       ("maker", ("launch", "free"))):
        assert kequn("--as", user, "campaigns", *args)[0] == 0
    code, out, _ = kequn("coupons", "issue", "free", "1", "--key", "f1")
    extra = out.split()[2]
    code, out, _ = kequn("coupons", "usable", "1", "--loan-context",
                         f"first_drawdown=true,loan_id=L1,{terms}")
    assert code == 0 and f"loan L1 holds {coupon} (reduction 100.00)" in out
    assert f"best: {extra} (reduction 200.00 with what the loan holds)" in out
    # Reverse after confirm: the booking is reversed in the ledger, the coupon voided.
    code, out, _ = kequn("coupons", "reverse", coupon, "--loan", "L1", "--key", "r1")
    assert code == 0 and "(voided)" in out
    code, out, _ = kequn("campaigns", "ledger", "paid")
    ledger = table(out)
    assert list(zip(ledger.column("kind"), ledger.column("amount"), strict=True))[-1] == (
        "reversal", "100.00")
    code, out, _ = kequn("campaigns", "counters", "paid")
    assert table(out).record()["budget"] == "250.00: reserved 0.00, booked 0.00"
    # The approved file changes: no more issues until it is submitted and approved again.
    paid = Path(os.environ["KEQUN_PROJECT_DIR"]) / "campaigns" / "paid.yaml"
    paid.write_text(paid.read_text().replace("budget: 250", "budget: 900"))
    code, out, _ = kequn("campaigns", "state", "paid")
    assert table(out).record()["issues"].startswith(
        "no (not_live): the definition changed since approval")
    code, _, err = kequn("coupons", "issue", "paid", "2", "--key", "k2")
    assert code == 1 and "issue refused (not_live)" in err
    for user, args in (("maker", ("submit", "paid")), ("ann", ("approve", "paid", "activity")),
                       ("bob", ("approve", "paid", "budget")), ("maker", ("launch", "paid"))):
        assert kequn("--as", user, "campaigns", *args)[0] == 0
    assert kequn("coupons", "issue", "paid", "2", "--key", "k2")[0] == 0
