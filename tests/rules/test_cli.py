"""``kequn rules ...`` and ``kequn touch ...`` through the real command line, on a
generated warehouse; and the uplift measure (rules/uplift.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from kequn.settings import REPO_ROOT
from serving.db import connect
from tests.cli.tables import table, tables
from tests.rules.conftest import DAY1, DAY2
from warehouse.db import connect as connect_warehouse

pytestmark = pytest.mark.slow

EVERYONE = """\
RULE (name everyone, owner 'team:x', trigger schedule, holdout 30%,
      templates (t 'hello {customer_id}'));
TRUE -> touch app_message t at event +1d 11:00
"""


@pytest.fixture
def cli(built: Path, tmp_path: Path):
    """Run kequn against a copy of the built warehouse, a fresh SQLite serving database
    and the repository's definitions plus the rule above."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copyfile(built, warehouse)
    root = tmp_path / "sql"
    shutil.copytree(REPO_ROOT / "sql", root)
    (root / "rules" / "everyone.sql").write_text(EVERYONE)
    serving = f"sqlite:///{tmp_path / 'serving.sqlite'}"
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["--warehouse", str(warehouse), "--serving", serving,
                                     "--project", str(root), *args])
        assert result.exit_code == code, result.output
        return result.output

    run.serving = serving  # type: ignore[attr-defined]
    run.warehouse = warehouse  # type: ignore[attr-defined]
    run.root = root  # type: ignore[attr-defined]
    return run


def test_list_show_validate(cli) -> None:
    listed = cli("rules", "list")
    assert "drawdown_repayment_coupon" in listed and "everyone" in listed
    shown = cli("rules", "show", "wake_up_touch")
    assert "segment wake_up" in shown and "10.0%" in shown and "FROM segments.members" in shown
    assert cli("rules", "validate").strip() == "3 rule(s) OK"
    bad = cli.root / "rules" / "bad.sql"
    bad.write_text("RULE (name bad, owner 'team:x', trigger drawdown);\nTRUE -> touch fax t\n")
    out = cli("rules", "validate", str(bad), code=1)
    assert "bad.sql:2:15: unknown channel 'fax'" in out


def test_preview_writes_nothing_then_run_orders_history(cli) -> None:
    preview = cli("rules", "preview", "everyone", "--as-of", DAY2.isoformat())
    assert "(nothing written)" in preview and "control" in preview
    assert tables(preview)[1].column("action") == ["touch app_message"]
    db = connect(cli.serving)
    try:
        assert not db.has_table("rule_orders") or not db.scalar(
            "SELECT count(*) FROM rule_orders")
    finally:
        db.close()
    first = cli("rules", "run", "everyone", "--as-of", DAY2.isoformat())
    assert table(first).record()["already ordered"] == "0"
    again = cli("rules", "run", "everyone", "--as-of", DAY2.isoformat())
    assert table(again).record()["new orders"] == "none"
    orders = cli("rules", "orders", "everyone", "--as-of", DAY2.isoformat(), "--limit", "2")
    assert "act" in orders and "control" in orders and "day:2025-06-30" in orders
    history = cli("rules", "history", "everyone")
    assert table(history).header == ["version", "first used (UTC)", "orders"]
    outbox = cli("touch", "outbox", "--rule", "everyone")
    assert "app_message" in outbox and "pending" in outbox
    cli("touch", "opt-out", "3", "app_message")
    cli("touch", "opt-out", "3", "fax", code=2)
    sent = cli("touch", "dispatch", "--sink", str(cli.root.parent / "sink"))
    assert "sent" in sent
    assert (cli.root.parent / "sink" / "app_message.jsonl").exists()


def test_uplift_compares_acted_and_control_on_an_outcome(cli) -> None:
    cli("rules", "run", "everyone", "--as-of", DAY1.isoformat())
    out = cli("rules", "uplift", "everyone", "--from", DAY1.isoformat(), "--to",
              DAY1.isoformat(), "--outcome", "drawn", "--horizon", "1")
    db = connect(cli.serving)
    con = connect_warehouse(cli.warehouse, read_only=True)
    try:
        orders = db.fetchall("SELECT customer_id, decision FROM rule_orders WHERE rule = "
                             "'everyone'")
        drawn = {int(c) for (c,) in con.execute(
            "SELECT customer_id FROM tags.customer_tags WHERE as_of = ? AND drawn",
            [DAY2]).fetchall()}
    finally:
        con.close()
        db.close()
    acted = [int(c) for c, d in orders if d in ("act", "quiet_delayed")]
    control = [int(c) for c, d in orders if d == "control"]
    rows = {r[0]: r[1:] for r in table(out).rows}
    assert rows["acted"][0] == f"{len(acted):,}"
    assert rows["acted"][2] == f"{sum(c in drawn for c in acted) / len(acted):.2%}"
    assert rows["control"][0] == f"{len(control):,}" and "95% interval [" in out
    cli("rules", "uplift", "everyone", "--from", DAY1.isoformat(), "--to", DAY1.isoformat(),
        "--outcome", "nope", code=1)
