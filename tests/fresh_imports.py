"""What a piece of code imports, run in a fresh interpreter (for layering and optional-extra
tests: the running test process has imported everything already)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def imported(code: str, roots: tuple[str, ...]) -> list[str]:
    """The modules under the top-level packages ``roots`` that running ``code`` in a new
    Python process (in the repository) imported, sorted; the code's own asserts must hold."""
    probe = (f"{code}\nimport sys\n"
             f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {roots!r})))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, cwd=REPO)
    out = done.stdout.strip().splitlines()
    return [m for m in out[-1].split(",") if m] if out else []
