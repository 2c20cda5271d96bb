"""The commands that start the graph pause the garbage collector while Dagster loads
(kequn.collector); only the console script's own process keeps those objects out of later
collections (``gc.freeze``), never a process that runs commands in turn."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app

REPO = Path(__file__).resolve().parents[2]


def test_a_host_process_gets_its_collector_back_and_nothing_frozen() -> None:
    frozen, enabled = gc.get_freeze_count(), gc.isenabled()
    result = CliRunner().invoke(app, ["materialize", "--as-of", "not-a-day"])
    assert result.exit_code == 2 and "not a date" in result.output
    assert (gc.get_freeze_count(), gc.isenabled()) == (frozen, enabled)


def test_the_console_process_freezes_what_dagster_loaded() -> None:
    # the command fails on its argument after Dagster was imported, inside the pause
    script = (
        "import atexit, gc\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count(), gc.isenabled()))\n"
        "from cli.main import main\n"
        "main(['materialize', '--as-of', '2026-06-30', '--from', '2026-06-29'])\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    words = done.stdout.split()
    assert words[0] == "frozen" and int(words[1]) > 100_000 and words[2] == "True"
