"""``kequn validate``: every definition of every kind at once, for CI; and ``kequn settings``."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from kequn.settings import REPO_ROOT, SETTINGS

runner = CliRunner()


def test_the_repository_validates() -> None:
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "34 tags, 6 segments, 3 campaigns, 2 rules OK"


def test_every_problem_of_every_kind_is_named_and_exits_1(tmp_path: Path) -> None:
    root = tmp_path / "sql"
    shutil.copytree(REPO_ROOT / "sql", root)
    edits = {
        "tags/loans/drawn.sql": ("owner 'team:credit_risk'", "owner 'credit_risk'"),
        "segments/vip_list.sql": ("kind file", "kind fil"),
        "campaigns/wake_up_30d.yaml": ("total_stock: 2000000", "total_stock: lots"),
    }
    for rel, (old, new) in edits.items():
        path = root / rel
        path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    result = runner.invoke(app, ["--project", str(root), "validate"])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith(str(root))]
    assert [line.replace(f"{root}/", "").split(": ")[0] for line in lines] == [
        "tags/loans/drawn.sql:6:9", "segments/vip_list.sql:6:8",
        "campaigns/wake_up_30d.yaml:16:14"]
    assert "3 problems found." in result.stderr
    # what only needs a broken definition is not reported again: it waits for it
    assert "wake_up_campaign" not in result.stderr

    warned = runner.invoke(app, ["--project", str(root), "validate", "--warn-only"])
    assert warned.exit_code == 0
    assert warned.stdout.strip().endswith("broken")


def test_settings_lists_every_setting_with_its_variable() -> None:
    result = runner.invoke(app, ["--warehouse", "/srv/w.duckdb", "settings"])
    assert result.exit_code == 0
    for setting in SETTINGS:
        assert setting.env in result.stdout
    assert "/srv/w.duckdb" in result.stdout


def test_a_bad_setting_names_the_variable_and_value(monkeypatch) -> None:
    monkeypatch.setenv("KEQUN_SANDBOX_TIMEOUT_S", "soon")
    result = runner.invoke(app, ["settings"])
    assert result.exit_code == 1
    assert "KEQUN_SANDBOX_TIMEOUT_S='soon' is not valid" in result.stderr


def test_the_readme_documents_every_setting() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    configuration = readme[readme.index("## Configuration"):]
    for setting in SETTINGS:
        assert f"`{setting.env}`" in configuration, setting.env
