"""`kequn sync SEGMENT --as-of D [--dry-run] [--force]` and `kequn sync log [SEGMENT]`."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

import warehouse.db as wh
from cli.main import app
from serving.db import connect
from tests.serving.conftest import MEMBERS_DDL, eligible, set_members

SEGMENTS = {
    "vip.sql": """\
SEGMENT (
  name vip,
  kind sql,
  owner 'team:growth',
  sync on,
  max_removed_ratio 0.25,
);
SELECT customer_id FROM raw.customers
""",
    "quiet.sql": """\
SEGMENT (
  name quiet,
  kind sql,
  owner 'team:growth',
);
SELECT customer_id FROM raw.customers
""",
}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    project = tmp_path / "project"
    (project / "segments").mkdir(parents=True)
    for name, text in SEGMENTS.items():
        (project / "segments" / name).write_text(text)
    warehouse = tmp_path / "w.duckdb"
    serving = f"sqlite:///{tmp_path / 'serving.sqlite'}"
    monkeypatch.setenv("KEQUN_PROJECT_DIR", str(project))
    monkeypatch.setenv("KEQUN_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("KEQUN_SERVING_URL", serving)
    con = wh.connect(warehouse)
    con.execute(MEMBERS_DDL)
    set_members(con, "vip", date(2024, 3, 1), range(100))
    set_members(con, "vip", date(2024, 3, 2), range(50, 160))
    set_members(con, "vip", date(2024, 3, 3), range(60, 160))
    con.close()
    return {"serving": serving, "project": str(project)}


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_dry_run_then_apply_then_noop(env):
    plan = run("sync", "vip", "--as-of", "2024-03-01", "--dry-run")
    assert plan.exit_code == 0, plan.output
    assert re.search(r"adds +100  e\.g\. 0, 1, 2", plan.stdout)
    assert "(nothing synced yet)" in plan.stdout
    assert "guardrails pass" in plan.stdout
    assert "dry run: nothing written; the sync would be applied" in plan.stdout
    db = connect(env["serving"])
    assert eligible(db, "vip") == set()
    db.close()

    applied = run("sync", "vip", "--as-of", "2024-03-01")
    assert applied.exit_code == 0
    assert "\napplied in " in applied.stdout
    again = run("sync", "vip", "--as-of", "2024-03-01")
    assert "\nnoop in " in again.stdout


def test_blocked_exits_1_with_the_reason_and_force_applies(env):
    assert run("sync", "vip", "--as-of", "2024-03-01").exit_code == 0
    blocked = run("sync", "vip", "--as-of", "2024-03-02")
    assert blocked.exit_code == 1
    assert re.search(r"removes +50  e\.g\. 0, 1", blocked.stdout)
    assert ("vip.sql: sync of 'vip' blocked: 50 of 100 synced members (50%) would be "
            "removed, more than max_removed_ratio 25% (use --force to apply anyway)"
            ) in blocked.stderr
    forced = run("sync", "vip", "--as-of", "2024-03-02", "--force")
    assert forced.exit_code == 0
    db = connect(env["serving"])
    assert eligible(db, "vip") == set(range(50, 160))
    db.close()


def test_older_day_exits_1_unless_forced(env):
    assert run("sync", "vip", "--as-of", "2024-03-03", "--force").exit_code == 0
    older = run("sync", "vip", "--as-of", "2024-03-02")
    assert older.exit_code == 1
    assert "2024-03-02 is older than the synced snapshot of 2024-03-03" in older.stderr
    assert run("sync", "vip", "--as-of", "2024-03-02", "--force").exit_code == 0


def test_log_lists_runs(env):
    run("sync", "vip", "--as-of", "2024-03-01")
    run("sync", "vip", "--as-of", "2024-03-02")
    shown = run("sync", "log", "vip")
    assert shown.exit_code == 0
    assert "blocked" in shown.stdout and "applied" in shown.stdout
    assert shown.stdout.index("blocked") < shown.stdout.index("applied")  # newest first
    assert "2024-03-02" in shown.stdout
    assert "vip" not in run("sync", "log", "other").stdout.split("┃")[-1]


def test_user_errors(env):
    unknown = run("sync", "vipp", "--as-of", "2024-03-01")
    assert unknown.exit_code == 1
    assert "unknown segment 'vipp' (did you mean 'vip'?)" in unknown.stderr
    quiet = run("sync", "quiet", "--as-of", "2024-03-01")
    assert quiet.exit_code == 1
    assert "quiet.sql:1:1: segment 'quiet' is not synced" in quiet.stderr
    assert run("sync", "vip").exit_code == 2
    assert run("sync", "vip", "--as-of", "March").exit_code == 2
