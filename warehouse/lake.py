"""The DuckDB side of the lake: exporting raw tables, reading partitions back.

:func:`export_raw` writes every ``raw.*`` table of the warehouse as Parquet under
``<lake>/raw/<table>/`` (what ``kequn lake export`` and ``kequn generate --lake`` do), each
folder replaced whole. :func:`read_members` reads a segment's lake partition with DuckDB,
so the sync and parity never need Spark.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
from sqlglot import exp

from kequn.lake import Lake, has_parquet, replace_dir
from kequn.tables import RAW_SCHEMA


def raw_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The tables of schema ``raw`` in the warehouse, by name."""
    rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
                       "ORDER BY table_name", [RAW_SCHEMA]).fetchall()
    return [r[0] for r in rows]


def export_raw(con: duckdb.DuckDBPyConnection, lake: Lake) -> dict[str, int]:
    """Write each ``raw.<table>`` to ``<lake>/raw/<table>/data.parquet``; rows per table."""
    out: dict[str, int] = {}
    for name in raw_tables(con):
        final = lake.raw(name)
        temp = lake.temp_beside(final)
        temp.mkdir(parents=True)
        select = exp.select("*").from_(exp.table_(name, db=RAW_SCHEMA)).sql(dialect="duckdb")
        con.execute(f"COPY ({select}) TO '{_quoted(temp / 'data.parquet')}' "
                    "(FORMAT parquet, ROW_GROUP_SIZE 1000000)")
        replace_dir(temp, final)
        out[name] = int(con.execute(f"SELECT count(*) FROM ({select})").fetchall()[0][0])
    return out


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def parquet_relation(folder: Path) -> str:
    """DuckDB ``read_parquet`` over every Parquet file under ``folder`` (hive partitions)."""
    return (f"read_parquet('{_quoted(folder)}/**/*.parquet', hive_partitioning = true, "
            "union_by_name = true)")


def read_members(con: duckdb.DuckDBPyConnection, lake: Lake, segment: str,
                 day: date) -> pa.Table | None:
    """The segment's members for ``day`` from the lake (``customer_id``), or None when that
    partition was never written (an empty segment is an empty table, not None)."""
    folder = lake.members_partition(segment, day)
    if not has_parquet(folder):
        return None
    return con.sql(f"SELECT DISTINCT customer_id FROM read_parquet('{_quoted(folder)}/*.parquet') "
                   "WHERE customer_id IS NOT NULL").to_arrow_table()


def mirror() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the warehouse's schema, into which lake partitions are loaded
    so the DuckDB checks and statistics run unchanged over what Spark wrote."""
    from kequn.migrations import apply_migrations
    from warehouse.db import DuckDBTarget
    from warehouse.schema import STREAM, WAREHOUSE_MIGRATIONS

    con = duckdb.connect()
    apply_migrations(DuckDBTarget(con), STREAM, WAREHOUSE_MIGRATIONS)
    return con


def load_day(con: duckdb.DuckDBPyConnection, table: str, folder: Path, day: date) -> bool:
    """Replace ``table`` in ``con`` by the rows of the partition ``folder`` (with ``as_of``
    = ``day`` in front); False (and an untouched table) when the partition does not exist."""
    if not has_parquet(folder):
        return False
    target = exp.to_table(table).sql(dialect="duckdb")
    con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT CAST(? AS DATE) AS as_of, * "
                f"FROM read_parquet('{_quoted(folder)}/*.parquet')", [day])
    return True


def load_all(con: duckdb.DuckDBPyConnection, table: str, folder: Path) -> bool:
    """Replace ``table``'s rows by every partition under ``folder`` (hive columns kept)."""
    if not has_parquet(folder):
        return False
    target = exp.to_table(table).sql(dialect="duckdb")
    con.execute(f"DELETE FROM {target}")
    con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {parquet_relation(folder)}")
    return True


def save_day(con: duckdb.DuckDBPyConnection, table: str, folder: Path, day: date,
             lake: Lake) -> None:
    """Write ``table``'s rows of ``day`` (without ``as_of``) to the partition ``folder``."""
    temp = lake.temp_beside(folder)
    temp.mkdir(parents=True)
    source = exp.to_table(table).sql(dialect="duckdb")
    con.execute(f"COPY (SELECT * EXCLUDE (as_of) FROM {source} WHERE as_of = "
                f"DATE '{day.isoformat()}') TO '{_quoted(temp / 'data.parquet')}' "
                "(FORMAT parquet)")
    replace_dir(temp, folder)
