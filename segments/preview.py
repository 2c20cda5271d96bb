"""Preview a segment for a day: size, a sample, the compiled SQL and the time. Writes nothing.

Rule, combine and file segments run on a read-only connection to the warehouse;
analysts' SQL runs in the restricted read-only subprocess. No table is created or
changed, so a preview can run beside readers (not beside a writer: DuckDB refuses
to open a file read-only while another process writes it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date

from sqlglot import exp

from kequn.errors import ExecutionError
from plan.segments import CompiledSegment
from segments.build import check_inputs
from segments.sandbox import SandboxLimits, run_restricted
from warehouse.db import Warehouse, run, table_exists

SAMPLE_SIZE = 10


@dataclass(frozen=True)
class Preview:
    """The outcome of a preview."""

    segment: str
    as_of: date
    size: int
    sample: list[int] = field(default_factory=list)
    sql: str = ""
    elapsed_s: float = 0.0


def preview_segment(warehouse: Warehouse, compiled: CompiledSegment, as_of: date, *,
                    sample_size: int = SAMPLE_SIZE,
                    sandbox: SandboxLimits | None = None) -> Preview:
    """Evaluate ``compiled`` for ``as_of`` without writing anything."""
    started = time.perf_counter()
    segment = compiled.segment
    if segment.kind == "sql":
        result = run_restricted(warehouse.path, compiled.query, as_of, limits=sandbox,
                                location=segment.definition.body_location)
        ids = sorted(result.customer_ids, key=hash)
        size, sample = len(ids), ids[:sample_size]
    else:
        con = warehouse.connect(read_only=True)
        try:
            check_inputs_read_only(con, compiled, as_of)
            distinct = (exp.select("customer_id").from_(compiled.query.subquery("q"))
                        .where(exp.column("customer_id").is_(exp.null()).not_())
                        .group_by("customer_id"))
            run(con, exp.Create(this=exp.to_table("preview_ids"), kind="TABLE",
                                properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
                                expression=distinct), as_of)
            size = con.execute("SELECT count(*) FROM preview_ids").fetchone()[0]
            sample = [r[0] for r in con.execute(
                "SELECT customer_id FROM preview_ids ORDER BY hash(customer_id) LIMIT ?",
                [sample_size]).fetchall()]
        finally:
            con.close()
    return Preview(segment=segment.name, as_of=as_of, size=int(size), sample=sample,
                   sql=compiled.sql("duckdb"), elapsed_s=time.perf_counter() - started)


def check_inputs_read_only(con, compiled: CompiledSegment, as_of: date) -> None:
    """Like build.check_inputs; also fails clearly when nothing was imported yet."""
    if compiled.segment.kind == "file" and not table_exists(con, "segments", "imported"):
        raise ExecutionError("nothing has been imported yet",
                             compiled.segment.definition.location())
    check_inputs(con, compiled, as_of)
