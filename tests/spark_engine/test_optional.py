"""Spark stays optional: the default path never imports pyspark; the engine setting is checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kequn.errors import ValidationError
from kequn.lake import Lake, has_parquet, replace_dir
from kequn.settings import REPO_ROOT, Settings
from tests.fresh_imports import imported


def test_the_code_location_and_the_cli_load_without_pyspark() -> None:
    code = (
        "from dagster_project.definitions import build_defs\n"
        "from cli.main import app\n"
        "import app.engines, app.parity, spark_engine.engine, spark_engine.session\n"
        "defs = build_defs()\n"
        "assert defs.resolve_all_asset_keys()\n"
    )
    assert imported(code, ("pyspark", "py4j")) == []


def test_engine_defaults_to_duckdb_and_rejects_others() -> None:
    assert Settings.from_env({}).engine == "duckdb"
    settings = Settings.from_env({"KEQUN_ENGINE": "spark", "KEQUN_DATA_DIR": "/srv/kq"})
    assert settings.engine == "spark" and settings.lake_dir == Path("/srv/kq/lake")
    with pytest.raises(ValidationError, match="KEQUN_ENGINE='trino' is not valid: one of "
                                              "duckdb, spark"):
        Settings.from_env({"KEQUN_ENGINE": "trino"})


def test_cli_engine_option_is_checked() -> None:
    done = subprocess.run([sys.executable, "-c", "from cli.main import main; main()",
                           "--engine", "trino", "settings"], capture_output=True, text=True,
                          cwd=REPO_ROOT, check=False)
    assert done.returncode == 2 and "one of duckdb, spark" in done.stderr
    done = subprocess.run([sys.executable, "-c", "from cli.main import main; main()",
                           "--engine", "spark", "settings"], capture_output=True, text=True,
                          cwd=REPO_ROOT, check=True)
    assert any(line.split()[:2] == ["engine", "spark"] for line in done.stdout.splitlines())


def test_a_partition_is_replaced_whole_and_temp_folders_are_hidden(tmp_path: Path) -> None:
    lake = Lake(tmp_path)
    final = lake.members_partition("s", __import__("datetime").date(2025, 6, 30))
    for content in ("old", "new"):
        temp = lake.temp_beside(final)
        temp.mkdir()
        (temp / f"{content}.parquet").write_text(content)
        assert temp.name.startswith(".tmp-")
        replace_dir(temp, final)
    assert [p.name for p in final.iterdir()] == ["new.parquet"]
    assert sorted(p.name for p in final.parent.iterdir()) == [final.name]
    assert has_parquet(lake.table(("segments", "members")))
    # a killed write leaves only a hidden temp folder: never read as data
    orphan = lake.temp_beside(final.parent / "as_of=2025-07-01")
    orphan.mkdir()
    (orphan / "half.parquet").write_text("x")
    assert not has_parquet(orphan.parent / "as_of=2025-07-01")
