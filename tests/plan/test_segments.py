"""The compiled SQL of every example segment, in each dialect, snapshotted (syrupy)."""

from __future__ import annotations

import pytest

from plan.segments import DIALECTS, compile_segment
from project.loader import load_project
from tests.segments.conftest import SEGMENTS_DIR

PROJECT = load_project(SEGMENTS_DIR.parent)


@pytest.mark.parametrize("name", sorted(PROJECT.segments))
def test_compiled_sql_snapshot(name: str, snapshot) -> None:
    compiled = compile_segment(PROJECT.segments[name])
    assert {d: compiled.sql(d) for d in DIALECTS} == snapshot


def test_every_compiled_query_reads_the_day_or_a_fixed_set() -> None:
    for segment in PROJECT.segments.values():
        sql = compile_segment(segment).sql("duckdb")
        assert "$as_of" in sql or segment.kind == "file"
