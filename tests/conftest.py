"""Test-wide isolation: no test reads or writes the repository's data/ folder.

Every test gets its own data folder, warehouse path, serving database and
DAGSTER_HOME under tmp_path; definitions still come from the repository's sql/.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
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


@pytest.fixture(autouse=True)
def no_leaked_dagster_instance() -> Iterator[None]:
    """Undo (and report) a Dagster instance's state storage left installed by a test.

    A schedule or sensor context built without ``with`` opens an instance that is never
    closed; Dagster keeps its state storage in a context variable, and every later
    ``materialize`` in the same worker then fails with "undefined DagsterInstance weakref".
    The variable is restored here, so one leak cannot break the tests after it, and the
    leaking test gets a warning in the summary naming the cause.
    """
    from dagster._core.storage.defs_state import base

    before = base._current_storage.get()
    yield
    after = base._current_storage.get()
    if after is not before:
        base._current_storage.set(before)
        warnings.warn("the test left a Dagster instance open (build a schedule or sensor "
                      "context with `with`, or close the instance)", stacklevel=1)
