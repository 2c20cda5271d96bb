"""Fixtures for serving tests: each runs on SQLite and on PostgreSQL.

PostgreSQL comes from ``KEQUN_TEST_POSTGRES_URL`` (``.ci/postgres`` sets it) or from a
throwaway local cluster (``tests/pg.py``); without either the PostgreSQL variants are
skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from serving.db import ServingDB, connect
from tests.pg import postgres_base_url, postgres_url, serving_url  # noqa: F401  (fixtures)
from warehouse import db as wh

MEMBERS_DDL = (
    "CREATE TABLE IF NOT EXISTS segments.members "
    "(segment VARCHAR, as_of DATE, customer_id BIGINT)"
)
"""Some tests here still run this; the warehouse migration (``warehouse.db.connect``)
already creates ``segments.members``, so it is a no-op."""


@pytest.fixture
def db(serving_url: str) -> Iterator[ServingDB]:  # noqa: F811  (the fixture)
    """The serving database, migrated."""
    handle = connect(serving_url)
    yield handle
    handle.close()


@pytest.fixture
def warehouse_path(tmp_path: Path) -> Path:
    """A migrated warehouse file (``segments.members`` and the sync tracking tables exist,
    empty)."""
    path = tmp_path / "warehouse.duckdb"
    wh.connect(path).close()
    return path


@pytest.fixture
def warehouse(warehouse_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An open read-write connection to that warehouse."""
    con = wh.connect(warehouse_path)
    yield con
    con.close()


def set_members(
    con: duckdb.DuckDBPyConnection, segment: str, as_of: date, ids: Iterable[int]
) -> None:
    """Replace the members of ``segment`` on ``as_of`` with ``ids`` and record the day as
    built in ``segments.materializations``, as a segment build would."""
    table = pa.table({"customer_id": pa.array(sorted(set(ids)), type=pa.int64())})
    with wh.transaction(con):
        con.execute("DELETE FROM segments.members WHERE segment = ? AND as_of = ?",
                    [segment, as_of])
        con.register("kq_test_ids", table)
        con.execute("INSERT INTO segments.members SELECT ?, ?, customer_id FROM kq_test_ids",
                    [segment, as_of])
        con.unregister("kq_test_ids")
        mark_built(con, segment, as_of, table.num_rows)


def mark_built(con: duckdb.DuckDBPyConnection, segment: str, as_of: date, size: int) -> None:
    """Record (segment, as_of) in ``segments.materializations``, as a segment build does
    (the sync refuses a day the build has not produced)."""
    con.execute("DELETE FROM segments.materializations WHERE segment = ? AND as_of = ?",
                [segment, as_of])
    con.execute("INSERT INTO segments.materializations VALUES (?, ?, ?, NULL, current_timestamp)",
                [segment, as_of, size])


def eligible(db: ServingDB, segment: str) -> set[int]:
    """The customer ids ``coupon_eligibility`` holds for ``segment``."""
    return {int(r[0]) for r in db.fetchall(
        "SELECT customer_id FROM coupon_eligibility WHERE segment = ?", (segment,))}
