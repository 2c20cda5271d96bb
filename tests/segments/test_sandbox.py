"""Restricted runs of gated SQL: distinct ids, nothing written, time limit, typed result."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import duckdb
import pytest

from kequn.errors import ExecutionError
from project.sql_gate import gate
from segments.sandbox import SandboxLimits, run_restricted


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA raw")
    con.execute("CREATE TABLE raw.customers AS SELECT range AS customer_id, "
                "CAST(range AS VARCHAR) AS city FROM range(2000)")
    con.close()
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_restricted_run_returns_distinct_ids_and_writes_nothing(small: Path) -> None:
    before = digest(small)
    result = run_restricted(small, gate(
        "SELECT customer_id % 7 AS customer_id FROM raw.customers "
        "WHERE $as_of = DATE '2025-06-30'"), date(2025, 6, 30))
    assert sorted(result.customer_ids) == list(range(7))
    assert digest(small) == before
    assert not (small.parent / "w.duckdb.wal").exists()


def test_runaway_query_is_stopped_by_the_time_limit(small: Path) -> None:
    query = gate("SELECT a.customer_id FROM raw.customers a, raw.customers b, raw.customers c "
                 "WHERE (a.customer_id * b.customer_id + c.customer_id) % 7 = 123")
    with pytest.raises(ExecutionError, match="time limit"):
        run_restricted(small, query, date(2025, 6, 30), limits=SandboxLimits(timeout_s=0.5))


def test_result_must_be_integer(small: Path) -> None:
    with pytest.raises(ExecutionError, match="customer_id must be an integer column"):
        run_restricted(small, gate("SELECT city AS customer_id FROM raw.customers"),
                       date(2025, 6, 30))


def test_sql_regenerated_from_the_checked_tree_is_what_runs(small: Path) -> None:
    with pytest.raises(ExecutionError, match="Table with name nope does not exist"):
        run_restricted(small, gate("SELECT customer_id FROM raw.nope"), date(2025, 6, 30))
