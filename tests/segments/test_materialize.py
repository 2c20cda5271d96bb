"""segments.members: replacing exactly (segment, day), in one transaction, with stats."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from plan.segments import rule_query
from segments.materialize import is_materialized, member_stats, write_members
from tests.segments.conftest import DAY1, DAY2


def rows(con, segment: str, day: date) -> list[int]:
    return [r[0] for r in con.execute("SELECT customer_id FROM segments.members WHERE "
                                      "segment = ? AND as_of = ? ORDER BY 1",
                                      [segment, day]).fetchall()]


def ids(*values: int) -> pa.Table:
    return pa.table({"customer_id": pa.array(values, pa.int64())})


def test_replaces_exactly_one_segment_day(wide: Path) -> None:
    con = duckdb.connect(str(wide))
    write_members(con, "a", DAY1, ids=ids(1, 2, 3))
    write_members(con, "b", DAY2, ids=ids(9))
    write_members(con, "a", DAY2, ids=ids(1, 1, 4))
    stats = write_members(con, "a", DAY2, ids=ids(2, 3, 4, 4))
    assert rows(con, "a", DAY1) == [1, 2, 3]
    assert rows(con, "b", DAY2) == [9]
    assert rows(con, "a", DAY2) == [2, 3, 4]
    assert (stats.size, stats.previous_day, stats.previous_size, stats.added, stats.removed) \
        == (3, DAY1, 3, 1, 1)
    assert stats.change_ratio == 0.0 and sorted(stats.sample) == [2, 3, 4]
    assert is_materialized(con, "a", DAY2) and not is_materialized(con, "b", DAY1)


def test_rule_query_is_bound_to_the_day(wide: Path) -> None:
    con = duckdb.connect(str(wide))
    query = rule_query(sqlglot.parse_one("credit_granted AND NOT drawn"))[1]
    write_members(con, "r", DAY2, query=query)
    write_members(con, "r", DAY1, query=query)
    assert rows(con, "r", DAY2) == [1, 5]
    assert rows(con, "r", DAY1) == [1]


def test_a_failing_write_keeps_the_old_rows(wide: Path) -> None:
    con = duckdb.connect(str(wide))
    write_members(con, "a", DAY2, ids=ids(1, 2))
    bad = exp.select("customer_id").from_(exp.table_("nope", db="tags"))
    with pytest.raises(duckdb.Error):
        write_members(con, "a", DAY2, query=bad)
    assert rows(con, "a", DAY2) == [1, 2]
    assert member_stats(con, "a", DAY2).size == 2


def test_empty_result_is_a_materialisation(wide: Path) -> None:
    con = duckdb.connect(str(wide))
    stats = write_members(con, "e", DAY2, ids=ids())
    assert stats.size == 0 and is_materialized(con, "e", DAY2)
