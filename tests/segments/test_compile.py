"""The compiled SQL of every example segment, in each dialect, snapshotted (syrupy)."""

from __future__ import annotations

import pytest

from segments.compile import DIALECTS, compile_segment
from segments.load import load_segments, tag_types
from tests.segments.conftest import SEGMENTS_DIR, TAGS_DIR

PROJECT = load_segments(SEGMENTS_DIR)
TYPES = tag_types(TAGS_DIR)


@pytest.mark.parametrize("name", sorted(PROJECT.segments))
def test_compiled_sql_snapshot(name: str, snapshot) -> None:
    compiled = compile_segment(PROJECT.segments[name], TYPES)
    assert {d: compiled.sql(d) for d in DIALECTS} == snapshot


def test_every_compiled_query_reads_the_day_or_a_fixed_set() -> None:
    for segment in PROJECT.segments.values():
        sql = compile_segment(segment, TYPES).sql("duckdb")
        assert "$as_of" in sql or segment.kind == "file"
