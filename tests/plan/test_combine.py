"""Combine segments equal set algebra on the members (property-based)."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plan.segments import combine_query
from project.combine import SegmentRef, SetOp, parse_combine_text, render

NAMES = ("a", "b", "c", "d")
DAY = date(2025, 6, 30)
OTHER_DAY = date(2025, 6, 29)

leaves = st.sampled_from(NAMES).map(lambda n: SegmentRef(n, None))  # type: ignore[arg-type]
trees = st.recursive(
    leaves,
    lambda inner: st.builds(SetOp, st.sampled_from(["union", "intersect", "except"]),
                            inner, inner),
    max_leaves=6,
)
member_sets = st.fixed_dictionaries({n: st.sets(st.integers(0, 30), max_size=20) for n in NAMES})


def evaluate(node, sets: dict[str, set[int]]) -> set[int]:
    if isinstance(node, SegmentRef):
        return sets[node.name]
    left, right = evaluate(node.left, sets), evaluate(node.right, sets)
    return {"union": left | right, "intersect": left & right, "except": left - right}[node.op]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute("CREATE SCHEMA segments")
    connection.execute("CREATE TABLE segments.members (segment VARCHAR, as_of DATE, "
                       "customer_id BIGINT)")
    return connection


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees, sets=member_sets, noise=st.sets(st.integers(0, 30), max_size=10))
def test_compiled_combine_equals_set_algebra(con, tree, sets, noise) -> None:
    con.execute("DELETE FROM segments.members")
    rows = [(n, DAY, i) for n, ids in sets.items() for i in ids]
    rows += [(n, OTHER_DAY, i) for n in NAMES for i in noise]  # other days must not leak in
    if rows:
        con.executemany("INSERT INTO segments.members VALUES (?, ?, ?)", rows)
    query = combine_query(tree).sql(dialect="duckdb")
    got = {r[0] for r in con.execute(query, {"as_of": DAY}).fetchall()}
    assert got == evaluate(tree, sets)


@settings(max_examples=60, deadline=None)
@given(tree=trees)
def test_render_then_parse_round_trips(tree) -> None:
    text = render(tree)
    again = parse_combine_text(text)
    assert render(again) == text
