"""The imports inbox sensor: new, changed, duplicate and bad files; new segments."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest

import assets.imports_sensor as sensor_mod
import assets.segments as seg_assets
from app.context import KequnContext
from assets.common import DAILY
from kequn.settings import Settings
from tests.segments.conftest import phone_of, write

VIP = """SEGMENT (
  name vip,
  kind file,
  owner 'team:marketing',
  match phone,
  min_size 0,
  max_change_ratio none,
);
"""


@pytest.fixture
def env(tmp_path: Path, wide: Path):
    project = tmp_path / "project"
    write(project / "segments" / "vip.sql", VIP)
    settings = Settings(warehouse=wide, project_dir=project, data_dir=tmp_path / "data")
    (settings.imports_dir / "inbox").mkdir(parents=True)
    return settings


def evaluate(settings: Settings, cursor: str | None = None):
    """One sensor tick against definitions loaded now (with a sync/vip asset present)."""
    kequn = KequnContext(settings)  # a new context: the definitions as they are now
    sensor_defs = sensor_mod.build_definitions(kequn)
    defs = dg.Definitions(
        assets=[*seg_assets.build_definitions(kequn).assets, dg.AssetSpec(["sync", "vip"])],
        sensors=list(sensor_defs.sensors),
        resources={"kequn": kequn})
    sensor = defs.get_sensor_def(sensor_mod.SENSOR_NAME)
    with dg.build_sensor_context(cursor=cursor, definitions=defs) as context:
        result = sensor(context)
        requests = result if isinstance(result, list) else []
        return requests, context.cursor, defs


def drop(settings: Settings, name: str, lines: list[str]) -> Path:
    path = settings.imports_dir / "inbox" / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_new_changed_and_duplicate_files(env: Settings) -> None:
    drop(env, "vip.csv", [phone_of(1), phone_of(2)])
    requests, cursor, _ = evaluate(env)
    assert len(requests) == 1
    request = requests[0]
    archived = Path(request.run_config["ops"]["segments__vip"]["config"]["import_file"])
    assert archived.parent == env.imports_dir / "archive" and archived.exists()
    assert not (env.imports_dir / "inbox" / "vip.csv").exists()
    assert request.run_key.startswith("import:vip:")
    assert set(request.asset_selection) == {dg.AssetKey(["segments", "vip"]),
                                            dg.AssetKey(["sync", "vip"])}
    assert request.partition_key == DAILY.get_last_partition_key()

    # the requested run imports the archived file and materialises the segment
    seg_defs = seg_assets.build_definitions(KequnContext(env))
    result = dg.materialize(list(seg_defs.assets),
                            resources={"kequn": KequnContext(env)},
                            run_config=request.run_config, partition_key="2025-06-30",
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    con = duckdb.connect(str(env.warehouse), read_only=True)
    got = {r[0] for r in con.execute("SELECT customer_id FROM segments.members WHERE "
                                     "segment = 'vip'").fetchall()}
    con.close()
    assert got == {1, 2}

    # the same content again: archived as a duplicate, nothing requested
    drop(env, "vip.csv", [phone_of(1), phone_of(2)])
    again, cursor2, _ = evaluate(env, cursor)
    assert again == []
    assert any("duplicate" in p.name for p in (env.imports_dir / "archive").iterdir())
    assert cursor2 == cursor

    # changed content: a new run with a new run key
    drop(env, "vip.csv", [phone_of(3)])
    changed, cursor3, _ = evaluate(env, cursor2)
    assert len(changed) == 1 and changed[0].run_key != request.run_key
    assert json.loads(cursor3)["processed"]["vip"] != json.loads(cursor)["processed"]["vip"]


def test_bad_files_move_to_rejected_with_a_report(env: Settings) -> None:
    inbox = env.imports_dir / "inbox"
    (inbox / "vip.csv").write_bytes(b"\x81\x20\xff\xfe\n")
    drop(env, "Not A Name.csv", [phone_of(1)])
    drop(env, "vip__id.csv", ["1"])  # vip matches by phone
    requests, _, _ = evaluate(env)
    assert requests == []
    rejected = env.imports_dir / "rejected"
    reports = {p.name: p.read_text(encoding="utf-8") for p in rejected.glob("*.error.txt")}
    assert len(reports) == 3 and not list(inbox.iterdir())
    text = "\n".join(reports.values())
    assert "neither UTF-8 nor GBK/GB18030" in text
    assert "name the file <segment>.csv" in text
    assert "segment 'vip' matches by phone, not id" in text


def test_a_file_without_one_valid_value_is_rejected(env: Settings) -> None:
    drop(env, "vip.csv", ["phone", "hello", "12345"])
    requests, _, _ = evaluate(env)
    assert requests == []
    report = next((env.imports_dir / "rejected").glob("*.error.txt")).read_text()
    assert "no row of 'phone' is a valid phone: all 2 rows rejected" in report
    assert "12345" not in report


def test_new_segment_gets_a_definition_and_runs_after_reload(env: Settings) -> None:
    drop(env, "newcomers__phone_hash.csv", ["a" * 64, hashlib.sha256(b"x").hexdigest()])
    requests, cursor, _ = evaluate(env)
    assert requests == []
    definition = env.segments_dir / "newcomers.sql"
    assert "kind file" in definition.read_text() and "match phone_hash" in definition.read_text()
    assert "newcomers" in json.loads(cursor)["pending"]
    # definitions reload: the sensor now knows segments/newcomers and requests its run
    later, cursor2, _ = evaluate(env, cursor)
    assert [r.asset_selection for r in later] == [[dg.AssetKey(["segments", "newcomers"])]]
    assert json.loads(cursor2)["pending"] == {}
