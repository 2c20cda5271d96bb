"""The declared stack holds: imports only point down, and the pure layers stay pure.

The layer and purity contracts live in ``pyproject.toml`` (``[tool.importlinter]``) and are
checked statically by ``lint-imports``; the second test checks the same at run time, by
loading and compiling the example project in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from tests.fresh_imports import REPO, imported


def test_import_contracts_are_kept() -> None:
    done = subprocess.run([str(Path(sys.executable).with_name("lint-imports"))], cwd=REPO,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "broken" in done.stdout and " 0 broken" in done.stdout


def test_the_contracts_declare_every_package() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    linter = config["tool"]["importlinter"]
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests", "benchmarks"}
    assert set(linter["root_packages"]) == packages
    stack = next(c for c in linter["contracts"] if c["id"] == "stack")
    layered = {name.strip() for layer in stack["layers"] for name in layer.split("|")}
    assert layered == packages


def test_loading_and_compiling_import_neither_databases_nor_dagster() -> None:
    code = (
        "from kequn.settings import REPO_ROOT\n"
        "from project.loader import load_project\n"
        "from plan import compile_project\n"
        "plan = compile_project(load_project(REPO_ROOT / 'sql'))\n"
        "assert plan.tags.customer_tags_query is not None and plan.segments\n"
    )
    assert imported(code, ("duckdb", "dagster", "psycopg", "pyarrow")) == []
