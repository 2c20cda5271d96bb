"""One Spark session for the whole test session (local[2], few shuffle partitions).

Without pyspark or Java the Spark tests skip with the reason, except in CI
(``KEQUN_TEST_SPARK=1``, set by ``.ci/spark``), where a missing Spark is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from app.context import KequnContext
from kequn.settings import Settings
from spark_engine.session import unavailable_reason

CUSTOMERS = 2000
SEED = 7
DAY1, DAY2 = date(2025, 6, 29), date(2025, 6, 30)


def spark_settings(data: Path, **given) -> Settings:
    """Settings for a private data folder, Spark sized for a test."""
    return Settings.from_env(
        data_dir=data, warehouse=data / "warehouse.duckdb",
        serving_url=f"sqlite:///{data / 'serving.sqlite'}", dagster_home=data / "dagster_home",
        lake_dir=data / "lake", engine="spark", spark_driver_memory="1g",
        spark_shuffle_partitions=2, **given)


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The shared SparkSession (skipped, or failed in CI, when Spark cannot start)."""
    reason = unavailable_reason()
    if reason:
        if os.environ.get("KEQUN_TEST_SPARK"):
            pytest.fail(f"KEQUN_TEST_SPARK is set but {reason}")
        pytest.skip(reason)
    from spark_engine.session import start_session, stop_session

    session = start_session(spark_settings(tmp_path_factory.mktemp("spark")), "kequn-tests")
    yield session
    stop_session(session)


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated warehouse (shared, copied by each test that writes)."""
    from generate import generate_warehouse

    path = tmp_path_factory.mktemp("gen") / "warehouse.duckdb"
    generate_warehouse(path, customers=CUSTOMERS, seed=SEED, end_date=DAY2, progress=False)
    return path


@pytest.fixture
def kequn(tmp_path: Path, generated: Path) -> KequnContext:
    """A context over a private copy of the generated warehouse, engine spark."""
    import shutil

    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(generated, data / "warehouse.duckdb")
    return KequnContext(spark_settings(data))
