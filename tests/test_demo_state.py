"""A fresh demo removes only the local demo files, never a PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

from app.demo_state import clear_demo_state, demo_files
from kequn.settings import Settings


def test_clears_the_warehouse_and_a_sqlite_serving_database(tmp_path: Path) -> None:
    tmp_path = tmp_path / "demo"
    tmp_path.mkdir()
    settings = Settings(warehouse=tmp_path / "w.duckdb",
                        serving_url=f"sqlite:///{tmp_path / 's.sqlite'}")
    for name in ("w.duckdb", "w.duckdb.wal", "s.sqlite", "s.sqlite-wal", "keep.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "s.sqlite.locks").mkdir()
    removed = clear_demo_state(settings)
    assert sorted(p.name for p in removed) == [
        "s.sqlite", "s.sqlite-wal", "s.sqlite.locks", "w.duckdb", "w.duckdb.wal"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
    assert clear_demo_state(settings) == []


def test_leaves_a_postgresql_serving_database_alone(tmp_path: Path) -> None:
    settings = Settings(warehouse=tmp_path / "w.duckdb",
                        serving_url="postgresql://kequn@127.0.0.1/serving")
    assert demo_files(settings) == [tmp_path / "w.duckdb", tmp_path / "w.duckdb.wal"]


def test_on_spark_also_clears_the_lakes_tags_and_segments(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for folder in ("raw/customers", "tags/customer_tags", "segments/members"):
        (lake / folder).mkdir(parents=True)
    settings = Settings(warehouse=tmp_path / "w.duckdb", engine="spark", lake_dir=lake,
                        serving_url="postgresql://kequn@127.0.0.1/serving")
    assert clear_demo_state(settings) == [lake / "tags", lake / "segments"]
    assert [p.name for p in lake.iterdir()] == ["raw"]
