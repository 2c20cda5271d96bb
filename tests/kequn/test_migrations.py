"""kequn.migrations: versioned, recorded, atomic, safe twice and from two processes, on the
serving database (SQLite, PostgreSQL) and on the DuckDB warehouse."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import warehouse.db as wh
from kequn.errors import ExecutionError
from kequn.migrations import Migration, applied_versions, apply_migrations
from serving.db import connect
from serving.schema import SERVING_MIGRATIONS, STREAM
from warehouse.schema import STREAM as WAREHOUSE_STREAM
from warehouse.schema import WAREHOUSE_MIGRATIONS

REPO = Path(__file__).resolve().parents[2]

DEMO = (
    Migration(1, "widgets", "CREATE TABLE widgets (id BIGINT PRIMARY KEY, name VARCHAR(20))"),
    Migration(2, "widget sizes", {
        "sqlite": ("ALTER TABLE widgets ADD COLUMN size INTEGER",),
        "postgresql": ("ALTER TABLE widgets ADD COLUMN size INTEGER",
                       "CREATE INDEX widgets_size ON widgets (size)"),
    }),
)


def test_connect_migrates_the_serving_stream_once(serving_url):
    first = connect(serving_url)
    assert applied_versions(first, STREAM) == {m.version: m.name for m in SERVING_MIGRATIONS}
    assert apply_migrations(first, STREAM, SERVING_MIGRATIONS) == []
    first.close()
    again = connect(serving_url)
    assert again.scalar("SELECT count(*) FROM schema_migrations WHERE stream = ?",
                        (STREAM,)) == len(SERVING_MIGRATIONS)
    again.close()


def test_streams_are_independent_and_reruns_are_noops(db):
    assert apply_migrations(db, "demo", DEMO[:1]) == [1]
    assert apply_migrations(db, "demo", DEMO) == [2]
    assert apply_migrations(db, "demo", DEMO) == []
    db.execute("INSERT INTO widgets (id, name, size) VALUES (?, ?, ?)", (1, "a", 3))
    assert set(applied_versions(db, "demo")) == {1, 2}
    assert set(applied_versions(db, STREAM)) == {1}


def test_a_failing_migration_leaves_nothing_behind(db):
    broken = (
        *DEMO[:1],
        Migration(2, "half", ("CREATE TABLE gadgets (id BIGINT)", "CREATE TABLE oops (")),
    )
    with pytest.raises(Exception):  # noqa: B017 - either driver's syntax error
        apply_migrations(db, "demo", broken)
    assert set(applied_versions(db, "demo")) == {1}
    with pytest.raises(Exception):  # noqa: B017
        db.execute("SELECT * FROM gadgets")


def test_inconsistent_histories_are_refused(db):
    apply_migrations(db, "demo", DEMO)
    renamed = (DEMO[0], Migration(2, "something else", "SELECT 1"))
    with pytest.raises(ExecutionError, match="recorded as 'widget sizes'"):
        apply_migrations(db, "demo", renamed)
    with pytest.raises(ExecutionError, match="does not know; upgrade kequn"):
        apply_migrations(db, "demo", DEMO[:1])
    with pytest.raises(ExecutionError, match="unique, increasing"):
        apply_migrations(db, "demo", (DEMO[1], DEMO[0]))


CHILD = """
import sys
from serving.db import connect
from kequn.migrations import Migration, apply_migrations
db = connect(sys.argv[1])
steps = [Migration(v, f"step {v}", f"CREATE TABLE race_{v} (id BIGINT)") for v in range(1, 9)]
print(apply_migrations(db, "race", steps))
"""


@pytest.mark.slow
def test_two_processes_migrating_at_once(serving_url):
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, serving_url], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    applied = [ast.literal_eval(out.strip()) for out, _ in outputs]
    assert sorted(applied[0] + applied[1]) == list(range(1, 9))
    db = connect(serving_url)
    assert set(applied_versions(db, "race")) == set(range(1, 9))
    db.close()


def test_the_warehouse_runs_its_stream_through_the_same_runner(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with wh.connect(path) as con:  # a read-write open migrates
        target = wh.DuckDBTarget(con)
        assert set(applied_versions(target, WAREHOUSE_STREAM)) == {
            m.version for m in WAREHOUSE_MIGRATIONS}
        assert wh.table_exists(con, "segments", "members")
        assert apply_migrations(target, "demo", DEMO[:1]) == [1]
        assert apply_migrations(target, "demo", DEMO[:1]) == []
        broken = (*DEMO[:1], Migration(2, "half", ("CREATE TABLE gadgets (id BIGINT)",
                                                   "CREATE TABLE oops (")))
        with pytest.raises(Exception):  # noqa: B017 - DuckDB's parser error
            apply_migrations(target, "demo", broken)
        assert set(applied_versions(target, "demo")) == {1}
        assert not wh.table_exists(con, "main", "gadgets")
    with wh.connect(path, read_only=True) as con:  # a reader never migrates, nor needs to
        assert wh.table_exists(con, "sync", "marker")
