"""Rule test fixtures: serving databases (SQLite and PostgreSQL), rules from text, and a
generated warehouse with tags and segments built through Dagster."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from kequn.settings import REPO_ROOT, Settings
from project.loader import read_definition
from project.rule import Rule, holdout_bucket
from rules.schema import migrate
from serving.db import ServingDB, connect
from tests.pg import postgres_base_url, postgres_url, serving_url  # noqa: F401  (fixtures)

DAY1, DAY2 = date(2025, 6, 29), date(2025, 6, 30)
CUSTOMERS = 3000


def write_orders(db: ServingDB, rule: str, day: date,
                 orders: list[tuple[int, str, str, str | None, str, int]], *,
                 version: str = "v1", created_at: datetime = datetime(2026, 1, 1),
                 first_id: int | None = None) -> list[int]:
    """Write ``orders`` (customer, event key, decision, actions, branch, pending) as one
    run of ``rule`` for ``day``, the way rules.run writes them (a ``rule_runs`` row and
    consecutive ids); returns their ids."""
    with db.transaction():
        if first_id is None:
            first_id = int(db.scalar(
                "SELECT coalesce(max(order_id), 0) FROM rule_order_rows")) + 1
        run = int(db.scalar("SELECT coalesce(max(run_id), 0) FROM rule_runs")) + 1
        ids = list(range(first_id, first_id + len(orders)))
        db.execute("INSERT INTO rule_runs (run_id, rule, version_hash, as_of, created_at, "
                   "first_order_id, last_order_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (run, rule, version, day, created_at, ids[0] if ids else first_id,
                    ids[-1] if ids else first_id - 1))
        db.executemany("INSERT INTO rule_order_rows (order_id, run_id, rule, customer_id, "
                       "event_key, decision, actions, branch, pending) VALUES "
                       "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [(i, run, rule, *o) for i, o in zip(ids, orders, strict=True)])
    return ids


@pytest.fixture
def db(serving_url: str) -> Iterator[ServingDB]:  # noqa: F811  (the fixture)
    """The serving database with the rules schema."""
    handle = connect(serving_url)
    migrate(handle)
    yield handle
    handle.close()


def rule_from(tmp_path: Path, text: str, name: str = "r") -> Rule:
    """A rule read on its own from ``text`` (no checks against other definitions)."""
    path = tmp_path / f"{name}.sql"
    path.write_text(text, encoding="utf-8")
    rule = read_definition(path, "rule")
    assert isinstance(rule, Rule)
    return rule


def frame(rule: str, rows: list[tuple[int, str]], branch: str = "then", **columns: list
          ) -> pl.DataFrame:
    """Candidate rows as a compiled rule query returns them: (customer_id, event_key)."""
    data = {
        "customer_id": [c for c, _ in rows],
        "event_key": [k for _, k in rows],
        "branch": [branch] * len(rows),
        "holdout_bucket": [holdout_bucket(rule, c) for c, _ in rows],
        **columns,
    }
    return pl.DataFrame(data, schema_overrides={"customer_id": pl.Int64,
                                                "holdout_bucket": pl.UInt64})


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated warehouse with tags and segments built for DAY1 and DAY2 (read only)."""
    import assets.segments as seg_assets
    import assets.tags as tag_assets
    from app.context import KequnContext
    from generate import generate_warehouse

    path = tmp_path_factory.mktemp("rules-built") / "warehouse.duckdb"
    generate_warehouse(path, customers=CUSTOMERS, seed=7, end_date=DAY2)
    kequn = KequnContext(Settings(warehouse=path, project_dir=REPO_ROOT / "sql",
                                  data_dir=path.parent / "data"))
    assets = (list(tag_assets.build_definitions(kequn).assets)
              + list(seg_assets.build_definitions(kequn).assets))
    for day in (DAY1, DAY2):
        result = dg.materialize(assets, resources={"kequn": kequn},
                                partition_key=day.isoformat(),
                                instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
        assert all(e.event_type_value != "STEP_FAILURE" for e in result.all_events)
    return path
