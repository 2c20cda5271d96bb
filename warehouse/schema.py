"""The ``warehouse`` migration stream: every table kequn owns in the DuckDB warehouse.

Applied by :func:`warehouse.db.connect` on each read-write open (a no-op when current).
The tables whose columns follow the definitions (``tags.customer_tags`` and the tag
source tables ``tags._src_<group>``: one column per tag) are shaped by the tag build
instead; the ``raw.*`` tables belong to the lender (the demo generator writes them).

* ``tags.catalog``: one row per (as_of, tag), architecture §4.
* ``segments.members`` / ``segments.materializations``: members per (segment, day), and
  one row per built (segment, day) even when empty, architecture §5.
* ``segments.imported`` / ``segments.imports``: the matched customers of each file
  segment's latest upload, and the log of uploads.
* ``segments.favorites``: per-user favourite segments.
* ``segments.history``: size, entered and exited (left) per (segment, day), kept after
  the members are pruned; ``tags.distribution``: each tag's top values or quartile
  buckets per day (version 2).
* ``sync.applied`` / ``sync.marker``: what the last sync of each segment wrote to the
  serving database, and which sync that was (the sync's crash safety rests on them).

Version 1 creates with ``IF NOT EXISTS``: warehouses written before the stream existed
already hold these tables, and adopt the stream unchanged.
"""

from __future__ import annotations

from kequn.migrations import Migration
from kequn.tables import (
    CATALOG,
    DISTRIBUTION,
    FAVORITES,
    HISTORY,
    IMPORTED,
    IMPORTS,
    MATERIALIZATIONS,
    MEMBERS,
    SCHEMAS,
    SYNC_APPLIED,
    SYNC_MARKER,
    qualified,
)

STREAM = "warehouse"

CATALOG_COLUMNS = (
    ("as_of", "DATE"),
    ("name", "VARCHAR"),
    ("title", "VARCHAR"),
    ("description", "VARCHAR"),
    ("owner", "VARCHAR"),
    ("category_l1", "VARCHAR"),
    ("category_l2", "VARCHAR"),
    ("value_type", "VARCHAR"),
    ("kind", "VARCHAR"),
    ("coverage", "BIGINT"),
    ("coverage_ratio", "DOUBLE"),
    ("definition_hash", "VARCHAR"),
)

_CATALOG = (f"CREATE TABLE IF NOT EXISTS {qualified(CATALOG)} ("
            + ", ".join(f"{name} {kind}" for name, kind in CATALOG_COLUMNS)
            + ", PRIMARY KEY (as_of, name))")

WAREHOUSE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "catalog, members, imports, favorites and sync tracking", (
        *(f"CREATE SCHEMA IF NOT EXISTS {schema}" for schema in SCHEMAS),
        _CATALOG,
        f"""CREATE TABLE IF NOT EXISTS {qualified(MEMBERS)} (
            segment VARCHAR NOT NULL, as_of DATE NOT NULL, customer_id BIGINT NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {qualified(MATERIALIZATIONS)} (
            segment VARCHAR NOT NULL, as_of DATE NOT NULL, size BIGINT NOT NULL,
            definition_hash VARCHAR, materialized_at TIMESTAMP NOT NULL)""",
        # unique per (segment, customer_id) by construction (keys are distinct)
        f"""CREATE TABLE IF NOT EXISTS {qualified(IMPORTED)} (
            segment VARCHAR NOT NULL, customer_id BIGINT NOT NULL, import_id VARCHAR NOT NULL,
            row_no BIGINT)""",
        f"""CREATE TABLE IF NOT EXISTS {qualified(IMPORTS)} (
            import_id VARCHAR PRIMARY KEY, segment VARCHAR NOT NULL,
            content_hash VARCHAR NOT NULL, file_name VARCHAR, match VARCHAR, rows BIGINT,
            matched BIGINT, unmatched BIGINT, duplicate BIGINT, rejected BIGINT,
            imported_at TIMESTAMP DEFAULT current_timestamp)""",
        f"""CREATE TABLE IF NOT EXISTS {qualified(FAVORITES)} (
            user_name VARCHAR NOT NULL, segment VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (user_name, segment))""",
        f"""CREATE TABLE IF NOT EXISTS {qualified(SYNC_APPLIED)} (
            segment VARCHAR NOT NULL, customer_id BIGINT NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {qualified(SYNC_MARKER)} (
            segment VARCHAR NOT NULL, sync_id VARCHAR, as_of DATE, members BIGINT,
            definition_hash VARCHAR, updated_at TIMESTAMP)""",
    )),
    Migration(2, "segment history (entered/left per day) and tag distributions", (
        f"""CREATE TABLE IF NOT EXISTS {qualified(HISTORY)} (
            segment VARCHAR NOT NULL, as_of DATE NOT NULL, size BIGINT NOT NULL,
            entered BIGINT NOT NULL, exited BIGINT NOT NULL, previous_day DATE,
            PRIMARY KEY (segment, as_of))""",
        f"""CREATE TABLE IF NOT EXISTS {qualified(DISTRIBUTION)} (
            as_of DATE NOT NULL, name VARCHAR NOT NULL, rank INTEGER NOT NULL,
            bucket VARCHAR NOT NULL, customers BIGINT NOT NULL,
            PRIMARY KEY (as_of, name, rank))""",
    )),
)
