"""Pairwise overlap of materialised segments for one day (read-only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb

from kequn.errors import ExecutionError
from warehouse.db import table_exists


@dataclass(frozen=True)
class Overlap:
    """``counts[i][j]`` = customers in both ``names[i]`` and ``names[j]`` (diagonal: sizes)."""

    names: list[str]
    as_of: date
    counts: list[list[int]]

    def render(self) -> str:
        """A plain-text matrix, one row per segment."""
        width = max(len(n) for n in self.names) + 2
        cells = [max(len(str(c)) for row in self.counts for c in row), *map(len, self.names)]
        cell = max(cells) + 2
        lines = [" " * width + "".join(n.rjust(cell) for n in self.names)]
        for name, row in zip(self.names, self.counts, strict=True):
            lines.append(name.ljust(width) + "".join(str(c).rjust(cell) for c in row))
        return "\n".join(lines)


def overlap(con: duckdb.DuckDBPyConnection, names: list[str], as_of: date) -> Overlap:
    """Count pairwise intersections of the named segments' members on ``as_of``.

    Every segment must have been materialised for that day.
    """
    if not table_exists(con, "segments", "materializations"):
        raise ExecutionError("no segment has been materialised yet")
    done = {r[0] for r in con.execute(
        "SELECT DISTINCT segment FROM segments.materializations WHERE as_of = ?",
        [as_of]).fetchall()}
    missing = [n for n in names if n not in done]
    if missing:
        raise ExecutionError(f"not materialised for {as_of}: {', '.join(missing)} "
                             f"(run 'kequn materialize --as-of {as_of}')")
    rows = con.execute("""
        WITH m AS (SELECT segment, customer_id FROM segments.members
                   WHERE as_of = $d AND list_contains($names, segment))
        SELECT a.segment, b.segment, count(*) FROM m a JOIN m b USING (customer_id)
        GROUP BY ALL""", {"d": as_of, "names": names}).fetchall()
    found = {(a, b): n for a, b, n in rows}
    counts = [[int(found.get((a, b), 0)) for b in names] for a in names]
    return Overlap(names=names, as_of=as_of, counts=counts)
