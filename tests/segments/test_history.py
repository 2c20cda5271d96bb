"""A segment's size, entered and left per day: asset metadata, segments.history, CLI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.context import KequnContext
from app.segment_history import read_history
from cli.main import app
from kequn.settings import REPO_ROOT, Settings
from tests.segments.conftest import DAY1, DAY2, write
from tests.segments.test_assets import _run

pytestmark = pytest.mark.slow


def test_each_built_day_records_size_entered_and_left(
        built_copy: Callable[[], Path], tmp_path: Path) -> None:
    path = built_copy()
    project = tmp_path / "project"
    project.mkdir()
    (project / "tags").symlink_to(REPO_ROOT / "sql" / "tags")
    write(project / "segments" / "big.sql", "SEGMENT (name big, kind rule, owner 'team:a', "
          "rule 'registered_days >= 0', max_change_ratio 1.0);\n")
    first = _run(path, project, DAY1, "big")
    metadata = first.get_asset_materialization_events()[0] \
        .step_materialization_data.materialization.metadata
    assert metadata["business_day"].value == DAY1.isoformat()
    assert "previous_size" not in metadata and "previous_day" not in metadata  # no -1
    write(project / "segments" / "big.sql", "SEGMENT (name big, kind rule, owner 'team:a', "
          "rule 'registered_days >= 0 AND drawn', max_change_ratio 1.0);\n")
    second = _run(path, project, DAY2, "big")
    assert second.success
    metadata = second.get_asset_materialization_events()[0] \
        .step_materialization_data.materialization.metadata
    size, entered, left = (metadata[k].value for k in ("size", "entered", "left"))
    assert left > 0

    kequn = KequnContext(Settings(warehouse=path, project_dir=project))
    with kequn.connect_warehouse(read_only=True) as con:
        rows = read_history(con, "big")
    assert [(r.as_of, r.previous_day) for r in rows] == [(DAY1, None), (DAY2, DAY1)]
    assert (rows[1].size, rows[1].entered, rows[1].exited) == (size, entered, left)
    assert rows[1].size == rows[0].size + entered - left

    result = CliRunner().invoke(app, ["--warehouse", str(path), "--project", str(project),
                                      "segments", "history", "big"])
    assert result.exit_code == 0, result.output
    assert "business day" in result.output and "entered" in result.output
    assert f"{rows[0].size:,}" in result.output and f"{left:,}" in result.output
    assert any(bar in result.output for bar in "▁█")
