"""The instance's storage keeps connections open and stays Dagster's own SQLite storage."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from dagster_project.instance_storage import PooledSqliteEventLogStorage
from dagster_project.runner import dagster_instance
from kequn.settings import Settings

PLAIN_YAML = "telemetry:\n  enabled: false\n"


@dg.asset(check_specs=[dg.AssetCheckSpec("positive", asset="numbers")])
def numbers() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"rows": 3}, check_results=[
        dg.AssetCheckResult(check_name="positive", passed=True)])


def _home(tmp_path: Path) -> Path:
    return tmp_path / "dagster_home"


def test_the_shipped_configuration_uses_the_pooled_event_log(tmp_path: Path) -> None:
    home = _home(tmp_path)
    with dagster_instance(Settings(dagster_home=home)) as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        result = dg.materialize([numbers], instance=instance)
        assert result.success
        event = instance.get_latest_materialization_event(dg.AssetKey("numbers"))
        assert event is not None and event.asset_materialization.metadata["rows"].value == 3
    assert (home / "history" / "runs" / f"{result.run_id}.db").exists()


def test_dagsters_default_storage_reads_what_it_wrote(tmp_path: Path) -> None:
    home = _home(tmp_path)
    with dagster_instance(Settings(dagster_home=home)) as instance:
        run_id = dg.materialize([numbers], instance=instance).run_id
    (home / "dagster.yaml").write_text(PLAIN_YAML)  # Dagster's own storage, same files
    with dg.DagsterInstance.from_config(str(home)) as plain:
        assert not isinstance(plain.event_log_storage, PooledSqliteEventLogStorage)
        assert plain.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
        types = {e.dagster_event_type for e in plain.all_logs(run_id) if e.is_dagster_event}
        assert {dg.DagsterEventType.ASSET_MATERIALIZATION,
                dg.DagsterEventType.ASSET_CHECK_EVALUATION} <= types
        assert plain.get_latest_materialization_event(dg.AssetKey("numbers")) is not None


def test_events_committed_before_a_kill_are_kept(tmp_path: Path) -> None:
    home = _home(tmp_path)
    with dagster_instance(Settings(dagster_home=home)):
        pass  # writes dagster.yaml
    script = textwrap.dedent(f"""
        import os, signal
        import dagster as dg
        instance = dg.DagsterInstance.from_config({str(home)!r})
        run = instance.create_run_for_job(dg.GraphDefinition("g").to_job())
        for n in range(50):
            instance.report_engine_event(f"event {{n}}", run)
        print(run.run_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    env = {"DAGSTER_HOME": str(home), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    run_id = done.stdout.split()[0]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        messages = [e.message for e in instance.all_logs(run_id)]
        assert [m for m in messages if m.startswith("event ")] == [
            f"event {n}" for n in range(50)]


def test_a_table_found_is_not_looked_up_again(tmp_path: Path, monkeypatch) -> None:
    home = _home(tmp_path)
    with dagster_instance(Settings(dagster_home=home)) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, PooledSqliteEventLogStorage)
        assert dg.materialize([numbers], instance=instance).success  # check events too
        looked_up: list[str] = []
        original = SqliteEventLogStorage.has_table

        def counting(self: SqliteEventLogStorage, name: str) -> bool:
            looked_up.append(name)
            return original(self, name)

        monkeypatch.setattr(SqliteEventLogStorage, "has_table", counting)
        assert storage.has_table("asset_check_executions")
        assert not storage.has_table("no_such_table") and not storage.has_table("no_such_table")
        assert looked_up == ["no_such_table", "no_such_table"]  # found once, remembered
        assert dg.materialize([numbers], instance=instance).success
        assert "asset_check_executions" not in looked_up
        storage.wipe()
        assert storage.has_table("asset_check_executions")
        assert looked_up[-1] == "asset_check_executions"  # forgotten with the wipe


def test_an_asset_key_column_found_is_not_reflected_again(tmp_path: Path,
                                                          monkeypatch) -> None:
    home = _home(tmp_path)
    with dagster_instance(Settings(dagster_home=home)) as instance:
        storage = instance.event_log_storage
        assert isinstance(storage, PooledSqliteEventLogStorage)
        reflected: list[str] = []
        original = SqliteEventLogStorage._has_asset_key_col_on_connection

        def counting(self: SqliteEventLogStorage, conn, name: str) -> bool:
            reflected.append(name)
            return original(self, conn, name)

        monkeypatch.setattr(SqliteEventLogStorage, "_has_asset_key_col_on_connection",
                            counting)
        assert dg.materialize([numbers], instance=instance).success
        first = list(reflected)
        assert "last_materialization_timestamp" in first
        assert len(first) == len(set(first))  # each column reflected once, at first use
        assert dg.materialize([numbers], instance=instance).success
        assert storage.has_asset_key_index_cols()
        assert not storage.has_asset_key_col("no_such_column")
        assert not storage.has_asset_key_col("no_such_column")
        assert reflected == [*first, "no_such_column", "no_such_column"]  # absent: asked again
        event = instance.get_latest_materialization_event(dg.AssetKey("numbers"))
        assert event is not None and event.asset_materialization.metadata["rows"].value == 3
        storage.wipe()
        assert storage.has_asset_key_index_cols()
        assert reflected[-1] == "last_materialization_timestamp"  # forgotten with the wipe
