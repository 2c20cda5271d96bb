"""Test-wide isolation: no test reads or writes the repository's data/ folder.

Every test gets its own data folder, warehouse path, serving database and
DAGSTER_HOME under tmp_path; definitions still come from the repository's sql/.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private data folder for this test, with the kequn environment pointed at it."""
    data = tmp_path / "kequn-data"
    data.mkdir()
    monkeypatch.setenv("KEQUN_DATA_DIR", str(data))
    monkeypatch.setenv("KEQUN_WAREHOUSE", str(data / "warehouse.duckdb"))
    monkeypatch.setenv("KEQUN_SERVING_URL", f"sqlite:///{data / 'serving.sqlite'}")
    monkeypatch.setenv("DAGSTER_HOME", str(data / "dagster_home"))
    monkeypatch.delenv("KEQUN_RAW_MODE", raising=False)
    return data
