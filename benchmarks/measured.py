"""Run a command as a child process and measure its wall time and its own peak memory.

``ru_maxrss`` from ``wait4`` on a child started by this process is not the child's own
peak: Python starts children by ``vfork``, and Linux folds the high-water mark of the
memory the child borrowed from its parent until ``exec`` into the child's (a benchmark
that ran a 4 GiB query in-process reported 4 GiB for every child after it). So the child
is started by a small launcher process, which waits for it and reports its usage: the
launcher's own memory at that fork is a fresh interpreter's, far below anything measured.
"""

from __future__ import annotations

import compileall
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_LAUNCHER = """
import json, os, subprocess, sys, time
started = time.perf_counter()
child = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(child.pid, 0)
seconds = time.perf_counter() - started
# on a line of its own, whatever the child left unterminated
print("\\n" + json.dumps({"seconds": seconds, "max_rss_kib": usage.ru_maxrss,
                         "returncode": os.waitstatus_to_exitcode(status)}), file=sys.stderr)
"""


@dataclass(frozen=True)
class Measured:
    """One finished command: its output, exit code, wall seconds and peak resident set."""

    stdout: bytes
    stderr: bytes
    returncode: int
    seconds: float
    """From the command's start to its end (the launcher's own start excluded)."""
    max_rss_kib: int
    """The command's own peak resident set size (its descendants' included)."""

    @property
    def output(self) -> bytes:
        """stdout, then stderr."""
        return self.stdout + self.stderr


def run_measured(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                 cwd: Path | None = None) -> Measured:
    """Run ``argv`` to completion and measure it; a failing command is reported by its
    ``returncode``, not raised."""
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *argv], env=env, cwd=cwd,
                          capture_output=True, check=False)
    lines = proc.stderr.splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the launcher of {argv[0]} failed ({proc.returncode}): "
                           f"{proc.stderr.decode()[-2000:]}")
    usage = json.loads(lines[-1])
    return Measured(proc.stdout, b"\n".join(lines[:-1]), int(usage["returncode"]),
                    float(usage["seconds"]), int(usage["max_rss_kib"]))


REPO = Path(__file__).resolve().parent.parent


def compile_project(root: Path = REPO) -> None:
    """Byte-compile the project's packages (changed files only), as Python does on a
    first run wherever it may write: with ``PYTHONDONTWRITEBYTECODE`` set (as on the
    machines these benchmarks ran on) every timed ``kequn`` process would otherwise compile
    about 150 modules again (0.2 s of each start)."""
    for package in sorted(root.iterdir()):
        if (package / "__init__.py").exists() and package.name != "tests":
            compileall.compile_dir(package, quiet=1)
