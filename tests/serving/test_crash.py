"""Kill a real `kequn sync` process (SIGKILL) at each checkpoint, on SQLite and PostgreSQL:
coupon_eligibility holds exactly the old or the new membership, and the next run converges.
Also: two concurrent `kequn sync` processes of one segment serialise."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from kequn import warehouse as wh
from serving.db import connect
from serving.sync import (
    CHECKPOINTS,
    PAUSE_ENV,
    PAUSE_FILE_ENV,
    PAUSE_SECONDS_ENV,
    sync_log,
    sync_segment,
)
from serving.sync_settings import SyncSettings
from tests.serving.conftest import MEMBERS_DDL, eligible, set_members

REPO = Path(__file__).resolve().parents[2]
D1, D2, D3 = date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)
OLD, NEW, NEWER = set(range(0, 300)), set(range(100, 450)), set(range(200, 260))

SEGMENT_FILE = """\
SEGMENT (
  name vip,
  kind sql,
  owner 'team:growth',
  sync on,
  max_removed_ratio none,
);
SELECT customer_id FROM raw.customers
"""


@pytest.fixture
def project(tmp_path: Path, serving_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with one synced segment, a warehouse holding three days of members, and
    the serving database already synced to the first day."""
    folder = tmp_path / "project"
    (folder / "segments").mkdir(parents=True)
    (folder / "segments" / "vip.sql").write_text(SEGMENT_FILE)
    warehouse = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("KEQUN_PROJECT_DIR", str(folder))
    monkeypatch.setenv("KEQUN_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("KEQUN_SERVING_URL", serving_url)
    con = wh.connect(warehouse)
    con.execute(MEMBERS_DDL)
    for day, members in ((D1, OLD), (D2, NEW), (D3, NEWER)):
        set_members(con, "vip", day, members)
    db = connect(serving_url)
    assert sync_segment(con, db, "vip", D1, SyncSettings(max_removed_ratio=None)).ok
    db.close()
    con.close()
    return folder


def _command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from kequn.cli import main; main()", *args]


def kequn(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_command(*args), cwd=REPO, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=120)


def start_paused(point: str, flag: Path, seconds: float | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, PAUSE_ENV: point, PAUSE_FILE_ENV: str(flag)}
    if seconds is not None:
        env[PAUSE_SECONDS_ENV] = str(seconds)
    proc = subprocess.Popen(_command("sync", "vip", "--as-of", str(D2)), cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not flag.exists():
        if proc.poll() is not None:
            raise AssertionError(f"sync exited before {point}: {proc.communicate()}")
        assert time.monotonic() < deadline, f"sync never reached {point}"
        time.sleep(0.02)
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("point", CHECKPOINTS)
def test_sigkill_at_each_point_leaves_old_or_new_and_the_next_run_converges(
        project, serving_url, tmp_path, point):
    proc = start_paused(point, tmp_path / "paused")
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL

    committed = CHECKPOINTS.index(point) >= CHECKPOINTS.index("after_serving_commit")
    db = connect(serving_url)
    try:
        assert eligible(db, "vip") == (NEW if committed else OLD)
        killed = sync_log(db, "vip")[0]
        assert killed["as_of"] == D2
        assert killed["status"] == ("applied" if committed else "failed")
    finally:
        db.close()

    rerun = kequn("sync", "vip", "--as-of", str(D2))
    assert rerun.returncode == 0, rerun.stderr
    assert ("noop" if committed else "applied") in rerun.stdout
    db = connect(serving_url)
    con = wh.connect(os.environ["KEQUN_WAREHOUSE"])
    try:
        nextday = sync_segment(con, db, "vip", D3, SyncSettings(max_removed_ratio=None))
        assert (nextday.status, nextday.recovered) == ("applied", False)
        assert eligible(db, "vip") == NEWER
        statuses = [r["status"] for r in sync_log(db, "vip")]
        assert statuses[:2] == ["applied", "noop" if committed else "applied"]
    finally:
        con.close()
        db.close()


@pytest.mark.slow
def test_two_processes_syncing_one_segment_serialise(project, serving_url, tmp_path):
    first = start_paused("mid_apply", tmp_path / "paused", seconds=1.5)
    second = subprocess.Popen(_command("sync", "vip", "--as-of", str(D2)), cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out1, err1 = first.communicate(timeout=120)
    out2, err2 = second.communicate(timeout=120)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert "applied" in out1.splitlines()[-1]
    assert "noop" in out2.splitlines()[-1]
    db = connect(serving_url)
    try:
        assert eligible(db, "vip") == NEW
        rows = sync_log(db, "vip")
        assert [r["status"] for r in rows[:2]] == ["noop", "applied"]
        assert rows[0]["started_at"] > rows[1]["started_at"]
    finally:
        db.close()
