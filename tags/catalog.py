"""``tags.catalog``: one row per (as_of, tag) describing the tag and its coverage (architecture §4).

Written by :func:`tags.build.build_day` in the same transaction as the wide
table; read by ``kequn tags list`` and by the coverage checks (previous day). The table
itself is part of the warehouse schema (:mod:`warehouse.schema`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import duckdb

from kequn.tables import CATALOG as CATALOG_TABLE
from kequn.tables import qualified
from project.tag import Tag
from warehouse.db import insert_rows, table_exists

CATALOG = qualified(CATALOG_TABLE)


@dataclass(frozen=True)
class Coverage:
    """How many customers a tag covers on a day (value neither NULL nor FALSE)."""

    coverage: int
    customers: int

    @property
    def ratio(self) -> float:
        """coverage / customers (0 when there are no customers)."""
        return self.coverage / self.customers if self.customers else 0.0


def write_catalog(con: duckdb.DuckDBPyConnection, tags: Mapping[str, Tag], as_of: date,
                  coverage: Mapping[str, Coverage]) -> int:
    """Replace day ``as_of``'s catalog rows by one row per tag of ``tags``.

    Runs inside the caller's transaction; values are bound as parameters.
    Returns the number of rows written.
    """
    con.execute(f"DELETE FROM {CATALOG} WHERE as_of = ?", [as_of])
    rows = []
    for tag in tags.values():
        cov = coverage[tag.name]
        rows.append([as_of, tag.name, tag.title, tag.description, tag.owner, tag.category_l1,
                     tag.category_l2, tag.value_type, tag.kind, cov.coverage, cov.ratio,
                     tag.definition_hash])
    return insert_rows(con, CATALOG, rows)


def read_coverage(con: duckdb.DuckDBPyConnection, as_of: date) -> dict[str, tuple[int, float]]:
    """``{tag: (coverage, coverage_ratio)}`` recorded for ``as_of`` (empty when not built)."""
    if not table_exists(con, "tags", "catalog"):
        return {}
    rows = con.execute(
        f"SELECT name, coverage, coverage_ratio FROM {CATALOG} WHERE as_of = ?", [as_of]
    ).fetchall()
    return {name: (int(covered), float(ratio)) for name, covered, ratio in rows}


def latest_day(con: duckdb.DuckDBPyConnection) -> date | None:
    """The most recent as-of day in the catalog, or None."""
    if not table_exists(con, "tags", "catalog"):
        return None
    row = con.execute(f"SELECT max(as_of) FROM {CATALOG}").fetchone()
    return row[0] if row else None
