"""A warehouse connection's queries use the cores no step beside the warehouse keeps busy
(warehouse.db.fit_threads, kequn.cores)."""

from __future__ import annotations

from pathlib import Path

import duckdb
from sqlglot import exp

from kequn import cores
from kequn.cores import working_beside_the_warehouse
from warehouse.db import arrow, connect, run


def _threads(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT current_setting('threads')").fetchone()
    assert row is not None
    return int(row[0])


def test_a_connection_starts_with_the_cores_left(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(cores, "machine_cores", lambda: 3)
    with working_beside_the_warehouse():
        con = connect(tmp_path / "w.duckdb")
    try:
        assert _threads(con) == 2
    finally:
        con.close()


def test_each_statement_takes_the_cores_left_at_that_moment(tmp_path: Path,
                                                           monkeypatch) -> None:
    monkeypatch.setattr(cores, "machine_cores", lambda: 3)
    con = connect(tmp_path / "w.duckdb")
    try:
        assert _threads(con) == 3
        one = exp.select(exp.Literal.number(1))
        with working_beside_the_warehouse():
            assert run(con, one).fetchone() == (1,)
            assert _threads(con) == 2
        assert arrow(con, one).num_rows == 1
        assert _threads(con) == 3
    finally:
        con.close()
