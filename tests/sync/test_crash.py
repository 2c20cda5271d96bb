"""Kill a real sync process (SIGKILL) at each checkpoint, on SQLite and PostgreSQL:
coupon_eligibility holds exactly the old or the new membership, and the next run converges.
Also: two concurrent sync processes of one segment serialise.

The processes run :mod:`tests.sync.crash_worker`, which calls
:func:`sync.run.sync_segment` with a checkpoint that writes a flag file and sleeps at the
requested point (to be killed there, or for a while before going on)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from project.sync import SyncSettings
from serving.db import connect
from sync.log import sync_log
from sync.run import CHECKPOINTS, sync_segment
from tests.serving.conftest import eligible, set_members
from warehouse import db as wh

REPO = Path(__file__).resolve().parents[2]
D1, D2, D3 = date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)
OLD, NEW, NEWER = set(range(0, 300)), set(range(100, 450)), set(range(200, 260))


@pytest.fixture
def synced_warehouse(tmp_path: Path, serving_url: str) -> Path:
    """A warehouse holding three days of the segment ``vip``'s members, and the serving
    database already synced to the first day; the warehouse's path."""
    path = tmp_path / "warehouse.duckdb"
    con = wh.connect(path)
    for day, members in ((D1, OLD), (D2, NEW), (D3, NEWER)):
        set_members(con, "vip", day, members)
    db = connect(serving_url)
    assert sync_segment(con, db, "vip", D1, SyncSettings(max_removed_ratio=None)).ok
    db.close()
    con.close()
    return path


def _command(warehouse: Path, serving_url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "tests.sync.crash_worker", "--warehouse", str(warehouse),
            "--serving", serving_url, "--segment", "vip", "--as-of", str(D2), *args]


def worker(warehouse: Path, serving_url: str) -> subprocess.CompletedProcess[str]:
    """Sync vip for D2 in a new process, to the end."""
    return subprocess.run(_command(warehouse, serving_url), cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def start_paused(warehouse: Path, serving_url: str, point: str, flag: Path,
                 seconds: float | None = None) -> subprocess.Popen[str]:
    """Start a sync of vip for D2 in a new process; return once it waits at ``point``."""
    extra = ["--pause-at", point, "--flag", str(flag)]
    if seconds is not None:
        extra += ["--seconds", str(seconds)]
    proc = subprocess.Popen(_command(warehouse, serving_url, *extra), cwd=REPO,
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
        synced_warehouse, serving_url, tmp_path, point):
    proc = start_paused(synced_warehouse, serving_url, point, tmp_path / "paused")
    assert (tmp_path / "paused").read_text().split() == [str(proc.pid), point]
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL

    committed = CHECKPOINTS.index(point) >= CHECKPOINTS.index("after_serving_commit")
    logged = CHECKPOINTS.index(point) >= CHECKPOINTS.index("logged")
    db = connect(serving_url)
    try:
        assert eligible(db, "vip") == (NEW if committed else OLD)
        killed = sync_log(db, "vip")[0]
        if logged:
            assert killed["as_of"] == D2
            assert killed["status"] == ("applied" if committed else "failed")
        else:  # killed while planning: nothing written, no row either
            assert (killed["as_of"], killed["status"]) == (D1, "applied")
    finally:
        db.close()

    rerun = worker(synced_warehouse, serving_url)
    assert rerun.returncode == 0, rerun.stderr
    assert ("noop" if committed else "applied") in rerun.stdout
    db = connect(serving_url)
    con = wh.connect(synced_warehouse)
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
def test_two_processes_syncing_one_segment_serialise(synced_warehouse, serving_url, tmp_path):
    first = start_paused(synced_warehouse, serving_url, "mid_apply", tmp_path / "paused",
                         seconds=1.5)
    second = subprocess.Popen(_command(synced_warehouse, serving_url), cwd=REPO,
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
