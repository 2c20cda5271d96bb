"""One generated warehouse shared by the generator tests (generating is the slow part)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

from generate import GenerateStats, generate_warehouse

END = date(2025, 6, 30)
CUSTOMERS = 20_000
SEED = 11


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> GenerateStats:
    """A 20k-customer warehouse ending 2025-06-30, generated once per session."""
    path = tmp_path_factory.mktemp("generated") / "warehouse.duckdb"
    return generate_warehouse(path, customers=CUSTOMERS, seed=SEED, end_date=END)


@pytest.fixture
def con(generated: GenerateStats) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the shared generated warehouse."""
    connection = duckdb.connect(str(generated.path), read_only=True)
    yield connection
    connection.close()


def digest(path: Path) -> dict[str, str]:
    """md5 of every raw table's full contents in key order (to compare two warehouses)."""
    keys = {
        "customers": "customer_id",
        "credit_applications": "application_id",
        "loans": "loan_id",
        "installments": "loan_id, installment_no",
    }
    connection = duckdb.connect(str(path), read_only=True)
    try:
        return {
            table: connection.execute(
                f"SELECT md5(string_agg(t::VARCHAR, '|' ORDER BY {key})), count(*) "
                f"FROM raw.{table} t"
            ).fetchone()
            for table, key in keys.items()
        }
    finally:
        connection.close()


@pytest.fixture
def table_digest():
    """The :func:`digest` function (fixtures are how test modules share helpers here)."""
    return digest
