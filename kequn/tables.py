"""The warehouse's tables by name: the data contract (architecture §3-§6) in one place.

Compiled SQL (:mod:`plan`), the engines and the warehouse schema (:mod:`warehouse.schema`)
all name tables through these constants, as ``(schema, table)`` pairs.

>>> qualified(CUSTOMER_TAGS)
'tags.customer_tags'
"""

from __future__ import annotations

Table = tuple[str, str]

RAW_SCHEMA = "raw"
TAGS_SCHEMA = "tags"
SEGMENTS_SCHEMA = "segments"
SYNC_SCHEMA = "sync"
SCHEMAS = (RAW_SCHEMA, TAGS_SCHEMA, SEGMENTS_SCHEMA, SYNC_SCHEMA)

CUSTOMERS: Table = (RAW_SCHEMA, "customers")
"""The lender's customers; one row per customer (``registered_at`` says since when)."""
CUSTOMER_TAGS: Table = (TAGS_SCHEMA, "customer_tags")
"""The wide table: one row per (as_of, customer_id), one column per tag."""
CATALOG: Table = (TAGS_SCHEMA, "catalog")
"""One row per (as_of, tag): metadata and coverage."""
MEMBERS: Table = (SEGMENTS_SCHEMA, "members")
"""(segment, as_of, customer_id): every segment's members for every built day."""
MATERIALIZATIONS: Table = (SEGMENTS_SCHEMA, "materializations")
"""One row per built (segment, as_of), an empty segment included."""
IMPORTED: Table = (SEGMENTS_SCHEMA, "imported")
"""The matched customers of each file segment's latest import."""
IMPORTS: Table = (SEGMENTS_SCHEMA, "imports")
"""One row per import of a file (counts, content hash)."""
FAVORITES: Table = (SEGMENTS_SCHEMA, "favorites")
"""Per-user favourite segments."""
HISTORY: Table = (SEGMENTS_SCHEMA, "history")
"""One row per built (segment, as_of): size, entered, exited (left), previous day."""
DISTRIBUTION: Table = (TAGS_SCHEMA, "distribution")
"""One row per (as_of, tag, rank): a value or value range and its customers."""
SYNC_APPLIED: Table = (SYNC_SCHEMA, "applied")
"""What the last sync of each segment wrote to the serving database."""
SYNC_MARKER: Table = (SYNC_SCHEMA, "marker")
"""Which sync the rows of ``sync.applied`` belong to, per segment."""


def qualified(table: Table) -> str:
    """``schema.table``."""
    return f"{table[0]}.{table[1]}"
