"""Opening the DuckDB warehouse and writing to it safely.

The warehouse is one DuckDB file (DESIGN §1) with schemas ``raw``, ``tags`` and
``segments``. DuckDB allows one read-write process per file; every writer in kequn
opens it through :func:`connect` and writes inside :func:`transaction`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

SCHEMAS = ("raw", "tags", "segments")


def connect(path: Path | str, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the warehouse file; read-write connections create the schemas."""
    path = Path(path)
    if read_only:
        if not path.exists():
            from kequn.errors import ExecutionError, Location

            raise ExecutionError(
                "the warehouse does not exist yet (run 'kequn generate' or 'make demo')",
                Location(path),
            )
        return duckdb.connect(str(path), read_only=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    for schema in SCHEMAS:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    return con


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the block in one transaction: committed on success, rolled back on any error."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether ``schema.table`` exists as a table or view."""
    rows = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchall()  # fetchall, not fetchone: DuckDB 2.0 keeps a half-read result pending
    return bool(rows[0][0])
