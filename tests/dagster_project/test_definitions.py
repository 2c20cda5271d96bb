"""The whole code location loads, and the policy in build_defs holds for every asset."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from app.context import KequnContext
from assets.common import DAILY
from dagster_project.definitions import DAILY_BUILD_JOB, build_defs
from kequn.settings import FALLBACK_FIRST_DAY, Settings


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    # the fallback first day, whatever first day a local `make demo` recorded in data/
    built = build_defs(KequnContext(Settings(first_day=FALLBACK_FIRST_DAY)))
    dg.Definitions.validate_loadable(built)
    return built


def test_every_asset_has_an_owner_group_and_description(defs: dg.Definitions) -> None:
    for spec in defs.resolve_all_asset_specs():
        name = spec.key.to_user_string()
        assert spec.owners, f"{name} has no owner"
        assert all(o.startswith("team:") or "@" in o for o in spec.owners), name
        assert spec.group_name and spec.group_name != "default", f"{name} has no group"
        assert spec.description, f"{name} has no description"


def test_non_raw_assets_are_partitioned_by_business_day(defs: dg.Definitions) -> None:
    for spec in defs.resolve_all_asset_specs():
        if spec.key.path[0] != "raw":
            assert spec.partitions_def == DAILY, spec.key.to_user_string()


def test_daily_build_runs_at_two_in_shanghai_for_yesterday(defs: dg.Definitions) -> None:
    schedule = defs.resolve_schedule_def("daily_build_schedule")
    assert schedule.job_name == DAILY_BUILD_JOB
    assert schedule.execution_timezone == "Asia/Shanghai"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    # 02:00 on 2026-03-02 in Shanghai is 18:00 UTC on 03-01; the run is for 03-01.
    tick = datetime(2026, 3, 2, 2, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
        requests = list(schedule.evaluate_tick(context).run_requests or [])
    assert [r.partition_key for r in requests] == ["2026-03-01"]


def test_external_raw_mode_declares_raw_tables_without_a_generator() -> None:
    built = build_defs(KequnContext(Settings(raw_mode="external")))
    raw = [s for s in built.resolve_all_asset_specs() if s.key.path[0] == "raw"]
    assert sorted(s.key.path[1] for s in raw) == [
        "credit_applications", "customers", "installments", "loans"]
    for spec in raw:
        assert not built.resolve_assets_def(spec.key).is_executable


def test_every_warehouse_asset_runs_in_the_duckdb_pool(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    for spec in defs.resolve_all_asset_specs():
        node = graph.get(spec.key)
        if "duckdb" in spec.kinds and node.is_executable:
            assert node.pools == {"duckdb"}, spec.key.to_user_string()


def test_loading_the_code_location_leaves_heavy_imports_to_the_steps_that_need_them(
        tmp_path: Path) -> None:
    """Every command loads the definitions. polars (0.15 s to import) is only needed when
    a rule step runs, numpy and pyarrow when an uploaded file is parsed, and psycopg
    (0.1 s) when the serving database is PostgreSQL: with the embedded SQLite one, none
    of them is loaded."""
    code = ("import sys; from app.context import KequnContext; "
            "from dagster_project.definitions import build_defs; "
            "build_defs(KequnContext()).resolve_all_job_defs(); "
            "print(sorted(m for m in ('polars', 'numpy', 'pyarrow', 'psycopg') "
            "if m in sys.modules))")
    env = {**os.environ, "KEQUN_SERVING_URL": f"sqlite:///{tmp_path / 'serving.sqlite'}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2], env=env, check=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_a_run_keeps_the_serving_database_open_for_its_steps(tmp_path: Path) -> None:
    # what each run initialises once: inside, a step's close of the serving database
    # does not checkpoint it (serving.db.kept_open), and afterwards the last close does
    path = tmp_path / "serving.sqlite"
    kequn = KequnContext(Settings(first_day=FALLBACK_FIRST_DAY, data_dir=tmp_path,
                                  serving_url=f"sqlite:///{path}"))
    kequn.connect_serving().close()
    wal = Path(f"{path}-wal")

    def write() -> None:
        db = kequn.connect_serving()
        with db.transaction():
            db.execute("INSERT INTO sync_state (segment, sync_id, as_of, members, "
                       "updated_at) VALUES ('s', 'x', '2026-01-01', 0, '2026-01-01')")
        db.close()

    resource = build_defs(kequn).resources["kequn"]
    with dg.build_resources({"kequn": resource}) as resources:
        assert resources.kequn is kequn
        write()
        assert wal.exists() and wal.stat().st_size > 0
    assert not wal.exists()
