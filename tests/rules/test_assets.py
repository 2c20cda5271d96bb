"""End to end through Dagster on a generated warehouse: the shipped rules as
``rules/<name>`` assets after the tags, segments and syncs (assets/rules.py)."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import dagster as dg
import pytest

from app.context import KequnContext
from assets.rules import DISPATCH_JOB, dispatch_job, rule_key
from dagster_project.definitions import build_defs
from dagster_project.runner import materialize_days
from generate import generate_warehouse
from kequn.settings import REPO_ROOT, Settings
from project.rule import holdout_bucket
from serving.db import connect
from tests.approvals import make_live_at
from warehouse.db import connect as connect_warehouse

pytestmark = pytest.mark.slow
DAY1, DAY2 = date(2025, 6, 29), date(2025, 6, 30)
RULE = "drawdown_repayment_coupon"


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory):
    """The whole graph materialised for DAY1 and DAY2 (then DAY2 again) through Dagster."""
    root = tmp_path_factory.mktemp("rules-e2e")
    warehouse = root / "warehouse.duckdb"
    generate_warehouse(warehouse, customers=4000, seed=7, end_date=DAY2)
    kequn = KequnContext(Settings(warehouse=warehouse, project_dir=REPO_ROOT / "sql",
                                  data_dir=root / "data",
                                  serving_url=f"sqlite:///{root / 'serving.sqlite'}"))
    make_live_at(kequn.settings.serving_url, kequn.project.campaigns)  # only live ones issue
    instance = dg.DagsterInstance.ephemeral()
    runs = materialize_days([DAY1, DAY2], kequn=kequn, instance=instance)
    db = connect(kequn.settings.serving_url)
    first = {
        "orders": db.fetchall("SELECT rule, customer_id, event_key, decision, actions "
                              "FROM rule_orders ORDER BY 1, 2, 3"),
        "outbox": db.fetchall("SELECT message_id, channel, text, send_at FROM touch_outbox "
                              "ORDER BY 1"),
        "coupons": db.fetchall("SELECT coupon_id, customer_id FROM coupons WHERE "
                               "campaign = 'repayment_interest_free' ORDER BY 1"),
    }
    rerun = materialize_days([DAY2], kequn=kequn, instance=instance,
                             select=f"key:rules/{RULE} or key:rules/wake_up_touch")
    yield kequn, db, runs, first, rerun
    db.close()


def expected_orders(warehouse: Path, day: date) -> dict[tuple[int, str], date]:
    """Independently: each loan disbursed on ``day`` and its first installment's due date."""
    con = connect_warehouse(warehouse, read_only=True)
    try:
        rows = con.execute(
            "SELECT l.customer_id, l.loan_id, i.due_date FROM raw.loans l "
            "JOIN raw.installments i ON i.loan_id = l.loan_id AND i.installment_no = 1 "
            "WHERE CAST(l.disbursed_at AS DATE) = ?", [day]).fetchall()
    finally:
        con.close()
    return {(int(c), f"loan:{loan}"): due for c, loan, due in rows}


def test_the_rules_run_after_their_inputs(graph) -> None:
    _, _, runs, _, rerun = graph
    for run in runs:
        done = run.materialized
        for key in (f"rules/{RULE}", "rules/wake_up_touch"):
            assert key in done
        assert done.index(f"rules/{RULE}") > done.index("sync/borrowers")
        assert done.index("rules/wake_up_touch") > done.index("sync/wake_up")
        assert "issuance/repayment_interest_free" not in done  # rules issue it: no batch
    assert rerun[0].materialized == [f"rules/{RULE}", "rules/wake_up_touch"]


def test_the_example_rule_orders_equal_an_independent_computation(graph) -> None:
    kequn, db, _, first, _ = graph
    orders = [o for o in first["orders"] if o[0] == RULE]
    assert orders
    for day in (DAY1, DAY2):
        expected = expected_orders(kequn.settings.warehouse, day)
        got = {(int(c), k): d for r, c, k, d, _ in orders
               if (r, db.scalar("SELECT as_of FROM rule_orders WHERE rule = ? AND "
                                "customer_id = ? AND event_key = ?", (r, c, k))) == (RULE, day)}
        assert set(got) == set(expected), day
        assert set(got.values()) <= {"act"}
        for (customer, key), due in expected.items():
            order_id = db.scalar("SELECT order_id FROM rule_orders WHERE rule = ? AND "
                                 "customer_id = ? AND event_key = ?", (RULE, customer, key))
            messages = db.fetchall("SELECT channel, send_at FROM touch_outbox WHERE "
                                   "order_id = ? ORDER BY channel", (order_id,))
            ten_am = datetime(due.year, due.month, due.day, 2, 0)  # 10:00 Shanghai in UTC
            assert messages == [("push", ten_am), ("sms", ten_am)]
    results = [json.loads(a)[0] for r, *_, a in orders]
    assert {a["result"] for a in results} == {"issued"}
    assert len(first["coupons"]) == len(orders)
    assert {c for _, c in first["coupons"]} == {int(c) for _, c, *_ in orders}


def test_rerunning_a_day_changes_nothing(graph) -> None:
    _, db, _, first, _ = graph
    assert db.fetchall("SELECT rule, customer_id, event_key, decision, actions FROM rule_orders "
                       "ORDER BY 1, 2, 3") == first["orders"]
    assert db.fetchall("SELECT message_id, channel, text, send_at FROM touch_outbox "
                       "ORDER BY 1") == first["outbox"]
    assert db.fetchall("SELECT coupon_id, customer_id FROM coupons WHERE "
                       "campaign = 'repayment_interest_free' ORDER BY 1") == first["coupons"]


def test_the_wake_up_holdout_is_the_hash_of_rule_and_customer(graph) -> None:
    _, _db, _, first, _ = graph
    rows = [(int(c), d) for r, c, _, d, _ in first["orders"] if r == "wake_up_touch"]
    assert rows
    control = {c for c, d in rows if d == "control"}
    assert control == {c for c, _ in rows if holdout_bucket("wake_up_touch", c) < 1000}
    assert {d for _, d in rows} <= {"act", "quiet_delayed", "control"}


def test_the_dispatch_job_delivers_due_messages_to_the_file_sink(graph) -> None:
    kequn, db, *_ = graph
    defs = build_defs(kequn)
    assert defs.resolve_job_def(DISPATCH_JOB) is not None
    assert rule_key(RULE) in defs.resolve_all_asset_keys()
    due = db.scalar("SELECT count(*) FROM touch_outbox WHERE state = 'pending'")
    result = dispatch_job.execute_in_process(resources={"kequn": kequn},
                                             instance=dg.DagsterInstance.ephemeral())
    assert result.success
    assert db.scalar("SELECT count(*) FROM touch_outbox WHERE state = 'sent'") == due
    lines = sum(len(p.read_text(encoding="utf-8").splitlines())
                for p in (kequn.settings.data_dir / "touch").glob("*.jsonl"))
    assert lines == due
