"""The pure modules (load, compile, derived, model) import neither DuckDB nor Dagster."""

from __future__ import annotations

import subprocess
import sys


def test_load_and_compile_import_neither_duckdb_nor_dagster() -> None:
    code = (
        "import sys\n"
        "import tags.model, tags.derived, tags.load, tags.compile\n"
        "from pathlib import Path\n"
        "from datetime import date\n"
        "from kequn.settings import REPO_ROOT\n"
        "p = tags.load.load_tags(REPO_ROOT / 'sql' / 'tags')\n"
        "gs = tags.compile.plan_groups(p)\n"
        "tags.compile.customer_tags_query(p, gs, date(2025, 1, 1))\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('duckdb', 'dagster'))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == ""
