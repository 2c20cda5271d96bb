"""Restricted runs of gated SQL: distinct ids, nothing written, time limit, typed result."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import duckdb
import pytest

from kequn.errors import ExecutionError
from project.sql_gate import gate
from segments import sandbox
from segments.sandbox import SandboxLimits, prestart, run_restricted


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


def test_a_query_process_started_ahead_runs_the_next_query(small: Path) -> None:
    prestart()
    prestart()  # one at a time
    [ahead] = sandbox._spare
    result = run_restricted(small, gate("SELECT customer_id FROM raw.customers "
                                        "WHERE customer_id < 3"), date(2025, 6, 30))
    assert sorted(result.customer_ids) == [0, 1, 2]
    assert ahead.returncode == 0 and sandbox._spare == []  # it ran this query and ended
    prestart()
    with pytest.raises(ExecutionError, match="time limit"):  # its limits are the request's
        run_restricted(small, gate(
            "SELECT a.customer_id FROM raw.customers a, raw.customers b, raw.customers c "
            "WHERE (a.customer_id * b.customer_id + c.customer_id) % 7 = 123"),
            date(2025, 6, 30), limits=SandboxLimits(timeout_s=0.5))


def test_a_query_process_started_ahead_and_not_used_ends_quietly(small: Path) -> None:
    prestart()
    [ahead] = sandbox._spare
    sandbox._end_spare()  # what the process's exit runs
    assert ahead.returncode == 0 and sandbox._spare == []
