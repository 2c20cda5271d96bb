"""warehouse.db.insert_rows: every row appended once, in order, values bound as
parameters, across statement boundaries."""

from __future__ import annotations

from datetime import date

import duckdb

from warehouse.db import ROWS_PER_INSERT, insert_rows


def test_rows_across_several_statements_arrive_once_in_order() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (n INTEGER, label VARCHAR, day DATE)")
    rows = [(n, f"it's row {n}; DROP TABLE t", date(2026, 1, 1 + n % 28))
            for n in range(2 * ROWS_PER_INSERT + 7)]
    assert insert_rows(con, "t", rows) == len(rows)
    assert con.execute("SELECT n, label, day FROM t ORDER BY rowid").fetchall() == rows


def test_no_rows_writes_nothing() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (n INTEGER)")
    assert insert_rows(con, "t", []) == 0
    assert con.execute("SELECT count(*) FROM t").fetchone() == (0,)
