"""Segment test fixtures: tag types, hand-made warehouses, a warehouse built in Dagster."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from kequn.settings import REPO_ROOT, Settings
from warehouse.db import connect

SEGMENTS_DIR = REPO_ROOT / "sql" / "segments"
TAGS_DIR = REPO_ROOT / "sql" / "tags"
GEN_SEED = 7
GEN_CUSTOMERS = 3000
DAY1, DAY2 = date(2025, 6, 29), date(2025, 6, 30)

TAG_TYPES = {
    "credit_granted": "boolean", "drawn": "boolean", "overdue": "boolean",
    "overdue_days": "integer", "registered_days": "integer", "city": "string",
    "credit_limit": "decimal", "first_drawn_date": "date", "granted_not_drawn": "boolean",
}

# as_of, customer_id, credit_granted, drawn, overdue, overdue_days, registered_days, city,
# credit_limit, first_drawn_date, granted_not_drawn
WIDE_ROWS = [
    (DAY2, 1, True, False, False, None, 100, "Shanghai", 10000.0, None, True),
    (DAY2, 2, True, True, True, 12, 40, "Beijing", 5000.0, date(2025, 1, 3), False),
    (DAY2, 3, False, False, False, None, 10, "Chengdu", None, None, False),
    (DAY2, 4, True, True, False, None, 365, "Wuhan", 30000.0, date(2024, 5, 1), False),
    (DAY2, 5, True, False, None, None, 31, None, 8000.0, None, True),
    (DAY1, 1, True, False, False, None, 99, "Shanghai", 10000.0, None, True),
]


def make_wide_table(path: Path) -> Path:
    """A hand-made tags.customer_tags (and raw.customers) in a new DuckDB file."""
    con = connect(path)  # the warehouse's own schema first, as every kequn writer opens it

    con.execute("""CREATE TABLE tags.customer_tags (as_of DATE, customer_id BIGINT,
        credit_granted BOOLEAN, drawn BOOLEAN, overdue BOOLEAN, overdue_days INTEGER,
        registered_days INTEGER, city VARCHAR, credit_limit DECIMAL(12,2),
        first_drawn_date DATE, granted_not_drawn BOOLEAN)""")
    con.executemany("INSERT INTO tags.customer_tags VALUES (?,?,?,?,?,?,?,?,?,?,?)", WIDE_ROWS)
    con.execute("""CREATE TABLE raw.customers AS SELECT range AS customer_id,
        sha256(CAST(13800000000 + range AS VARCHAR)) AS phone_hash FROM range(1, 50)""")
    con.close()
    return path


@pytest.fixture
def wide(tmp_path: Path) -> Path:
    """A private hand-made warehouse with a wide tag table for 2025-06-29/30."""
    return make_wide_table(tmp_path / "wide.duckdb")


def phone_of(customer_id: int) -> str:
    """The phone number of a customer of the hand-made warehouse."""
    return str(13800000000 + customer_id)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated warehouse with tags and every example segment built through Dagster
    for DAY1 and DAY2 (read it, or copy it before writing)."""
    import assets.segments as seg_assets
    import assets.tags as tag_assets
    from app.context import KequnContext
    from generate import generate_warehouse

    path = tmp_path_factory.mktemp("segments-built") / "warehouse.duckdb"
    generate_warehouse(path, customers=GEN_CUSTOMERS, seed=GEN_SEED, end_date=DAY2)
    settings = Settings(warehouse=path, project_dir=REPO_ROOT / "sql",
                        data_dir=path.parent / "data")
    kequn = KequnContext(settings)
    assets = (list(tag_assets.build_definitions(kequn).assets)
              + list(seg_assets.build_definitions(kequn).assets))
    for day in (DAY1, DAY2):
        result = dg.materialize(assets, resources={"kequn": kequn},
                                partition_key=day.isoformat(),
                                instance=dg.DagsterInstance.ephemeral())
        assert result.success
    return path


@pytest.fixture
def built_copy(built: Path, tmp_path: Path) -> Callable[[], Path]:
    """A function returning a private, writable copy of the built warehouse."""
    def copy() -> Path:
        target = tmp_path / "built.duckdb"
        shutil.copyfile(built, target)
        return target
    return copy


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` (parents created) and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
