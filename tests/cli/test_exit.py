"""The ``kequn`` process ends as soon as its command has (cli.main.exit_now): with the
command's status, after the exit handlers, with every byte written, and without the
interpreter's teardown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=60, check=False)


def test_the_status_the_handlers_and_all_the_output_survive() -> None:
    done = _python(
        "import atexit, sys\n"
        "from cli.main import exit_now\n"
        "atexit.register(lambda: print('handler ran'))\n"
        "sys.stdout.write('x' * 300_000)\n"
        "sys.stderr.write('to stderr')\n"
        "exit_now(3)\n")
    assert done.returncode == 3
    assert done.stdout == "x" * 300_000 + "handler ran\n"
    assert done.stderr == "to stderr"


def test_a_message_goes_to_stderr_with_status_1_and_none_is_0() -> None:
    done = _python("from cli.main import exit_now\nexit_now('no such thing')\n")
    assert (done.returncode, done.stderr) == (1, "no such thing\n")
    assert _python("from cli.main import exit_now\nexit_now(None)\n").returncode == 0


def test_the_console_command_keeps_click_s_statuses() -> None:
    kequn = [str(Path(sys.executable).with_name("kequn"))]
    ok = subprocess.run([*kequn, "--help"], capture_output=True, text=True, cwd=REPO,
                        timeout=120, check=False)
    assert ok.returncode == 0 and ok.stdout.startswith("Usage: kequn")
    usage = subprocess.run([*kequn, "materialize", "--no-such-option"], capture_output=True,
                           text=True, cwd=REPO, timeout=120, check=False)
    assert usage.returncode == 2 and "No such option" in usage.stderr
