"""Fixtures for the tag tests: the example plan, a hand-made warehouse, a generated one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from generate import GenerateStats, generate_warehouse
from generate.schema import TABLES, create_table_sql
from kequn.settings import REPO_ROOT
from plan import compile_project
from plan.tags import TagPlan
from project.loader import load_project
from warehouse.db import connect

TAGS_DIR = REPO_ROOT / "sql" / "tags"
GENERATED_END = date(2025, 6, 30)


def ts(text: str) -> datetime:
    """A naive Asia/Shanghai timestamp from 'YYYY-MM-DD HH:MM[:SS]'."""
    return datetime.fromisoformat(text)


# Hand-made rows; the expected tag values for each day are worked out in test_build.py.
CUSTOMERS = [
    (1, "a" * 64, ts("2025-01-01 10:00"), "APP", "NORMAL", "Shanghai"),
    (2, "b" * 64, ts("2025-01-05 09:00"), "H5", "STAFF", "Beijing"),
    (3, "c" * 64, ts("2025-03-10 08:00"), "MINI_PROGRAM", "NORMAL", "Chengdu"),
    (4, "d" * 64, ts("2025-03-11 23:30"), "OFFLINE", "OFFLINE", "Wuhan"),
    (5, "e" * 64, ts("2025-03-12 00:00"), "APP", "NORMAL", "Xi'an"),
]
APPLICATIONS = [
    (101, 1, ts("2025-01-02 10:00"), ts("2025-01-03 09:00"), "APPROVED", 10000, "SELF_APPLIED"),
    (102, 2, ts("2025-03-01 10:00"), ts("2025-03-10 23:59:59"), "APPROVED", 30000,
     "PRE_APPROVED"),
    (103, 3, ts("2025-03-10 09:00"), ts("2025-03-11 00:00"), "REJECTED", None, "SELF_APPLIED"),
    (104, 3, ts("2025-03-11 09:00"), None, "PENDING", None, "SELF_APPLIED"),
    (105, 1, ts("2025-02-01 10:00"), ts("2025-03-11 12:00"), "APPROVED", 20000, "SELF_APPLIED"),
]
LOANS = [
    (201, 1, ts("2025-01-10 11:00"), ts("2025-01-10 12:00"), "SETTLED", ts("2025-03-05 10:00"),
     3000, 3, "A1", "F1", "APP"),
    (202, 1, ts("2025-03-10 22:00"), ts("2025-03-11 00:00"), "DISBURSED", None, 5000, 6, "A1",
     "F1", "APP"),
    (203, 2, ts("2025-03-10 10:00"), None, "FAILED", None, 1500, 3, "A2", "F2", "H5"),
    (204, 2, ts("2025-01-20 10:00"), ts("2025-01-20 11:00"), "DISBURSED", None, 1000, 3, "A2",
     "F2", "H5"),
    (205, 3, ts("2025-03-10 20:00"), ts("2025-03-11 00:00"), "DISBURSED", None, 2000, 3, "A1",
     "F1", "MINI_PROGRAM"),
]
INSTALLMENTS = [
    (201, 1, date(2025, 2, 10), 1000, ts("2025-02-09 20:00")),
    (201, 2, date(2025, 3, 1), 1000, ts("2025-03-05 10:00")),  # paid late, after 03-04
    (201, 3, date(2025, 4, 1), 1000, ts("2025-03-05 10:00")),  # prepaid at settlement
    (204, 1, date(2025, 2, 20), 340, None),  # never paid
    (204, 2, date(2025, 3, 10), 340, ts("2025-03-12 08:00")),  # late payment after 03-11
    (205, 1, date(2025, 4, 11), 680, None),
]


def make_tiny_warehouse(path: Path) -> Path:
    """Write the hand-made raw tables into a new DuckDB file at ``path``."""
    con = connect(path)
    rows = {"customers": CUSTOMERS, "credit_applications": APPLICATIONS, "loans": LOANS,
            "installments": INSTALLMENTS}
    for name, values in rows.items():
        con.execute(create_table_sql(TABLES[name]))
        marks = ", ".join("?" for _ in TABLES[name].columns)
        con.executemany(f"INSERT INTO raw.{name} VALUES ({marks})", values)
    con.close()
    return path


@pytest.fixture(scope="session")
def plan() -> TagPlan:
    """The repository's tag definitions (sql/tags), compiled."""
    return compile_project(load_project(TAGS_DIR.parent)).tags


@pytest.fixture
def tiny_path(tmp_path: Path) -> Path:
    """A fresh hand-made warehouse file for this test."""
    return make_tiny_warehouse(tmp_path / "tiny.duckdb")


@pytest.fixture
def tiny(tiny_path: Path) -> duckdb.DuckDBPyConnection:
    """A read-write connection to a fresh hand-made warehouse."""
    con = connect(tiny_path)
    yield con
    con.close()


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> GenerateStats:
    """A 4,000-customer generated warehouse ending 2025-06-30 (raw tables only)."""
    path = tmp_path_factory.mktemp("tags-generated") / "warehouse.duckdb"
    return generate_warehouse(path, customers=4000, seed=5, end_date=GENERATED_END)


@pytest.fixture
def generated_copy(generated: GenerateStats, tmp_path: Path) -> Callable[[], Path]:
    """A function returning a private copy of the generated warehouse (safe to write)."""
    def copy() -> Path:
        target = tmp_path / "generated.duckdb"
        target.write_bytes(Path(generated.path).read_bytes())
        return target
    return copy
