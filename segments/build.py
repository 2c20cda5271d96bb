"""Building one segment for one day: the code path shared by Dagster and the CLI.

Order matters for analysts' SQL: the restricted query runs in its own read-only
process first, and only then is the warehouse opened read-write to store the result
(DuckDB allows one writer process per file, and a read-only open fails while a writer
holds it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from kequn.errors import ExecutionError, ValidationError
from plan.segments import CompiledSegment
from segments.imports import ImportReport, content_hash, import_file, was_imported
from segments.imports.decode import read_upload
from segments.imports.normalise import DEFAULT_MAX_BYTES
from segments.materialize import MemberStats, is_materialized, write_members
from segments.sandbox import SandboxLimits, run_restricted
from warehouse.db import Warehouse, table_exists

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class BuildResult:
    """What a build wrote: member stats, time taken and any file import it made."""

    stats: MemberStats
    elapsed_s: float
    import_report: ImportReport | None = None


def missing_tags(con, tags: Sequence[str], as_of: date) -> list[str]:
    """The tags among ``tags`` that the wide table does not hold for ``as_of``: no column
    yet (added but never built), or not in that day's tag catalog."""
    columns = {r[0].lower() for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'tags' "
        "AND table_name = 'customer_tags'").fetchall()}
    missing = [t for t in tags if t.lower() not in columns]
    if table_exists(con, "tags", "catalog"):
        built = {r[0].lower() for r in con.execute(
            "SELECT name FROM tags.catalog WHERE as_of = ?", [as_of]).fetchall()}
        if built:
            missing += [t for t in tags if t.lower() not in built and t not in missing]
    return missing


def check_inputs(con, compiled: CompiledSegment, as_of: date) -> None:
    """Fail clearly when what the segment reads is missing for ``as_of``."""
    segment = compiled.segment
    if segment.kind == "rule" and not table_exists(con, "tags", "customer_tags"):
        raise ExecutionError("tags.customer_tags does not exist; build the tags first",
                             segment.definition.location("rule"))
    if segment.kind == "rule":
        row = con.execute("SELECT 1 FROM tags.customer_tags WHERE as_of = ? LIMIT 1",
                          [as_of]).fetchall()
        if not row:
            raise ExecutionError(f"tags.customer_tags has no rows for {as_of}; build the tags "
                                 f"for that day first: kequn materialize --as-of {as_of} "
                                 "--select 'key:tags/*'", segment.definition.location("rule"))
        missing = missing_tags(con, segment.tags, as_of)
        if missing:
            names = ", ".join(f"'{t}'" for t in missing)
            raise ExecutionError(
                f"tag{'s' if len(missing) > 1 else ''} {names} not built for {as_of}: run "
                f"kequn materialize --as-of {as_of} --select 'key:tags/*'",
                segment.definition.location("rule"))
    for child in compiled.segments:
        if not is_materialized(con, child, as_of):
            raise ExecutionError(f"segment '{child}' is not materialised for {as_of}; build it "
                                 "first", segment.definition.location())


def build_segment(warehouse: Warehouse, compiled: CompiledSegment, as_of: date, *,
                  import_path: Path | None = None, sandbox: SandboxLimits | None = None,
                  max_bytes: int = DEFAULT_MAX_BYTES,
                  report_dir: Path | None = None,
                  then: Callable[[duckdb.DuckDBPyConnection, MemberStats], None] | None = None,
                  ) -> BuildResult:
    """Materialise ``compiled`` for ``as_of`` into segments.members; return the stats.

    ``then`` (the caller's own record of the build, e.g. its history row) runs on the
    build's connection once the members are written, before it is closed.

    For a file segment, ``import_path`` (an inbox upload) is imported first; without
    it, the definition's own ``file`` is imported when that content was never imported
    for the segment (so a later upload is not overwritten by the sample file). The
    rows-not-imported report goes beside an upload, but into ``report_dir`` for a
    definition's own file (never into the definitions folder).
    """
    started = time.perf_counter()
    segment = compiled.segment
    ids: pa.Table | None = None
    if segment.kind == "sql":
        result = run_restricted(warehouse.path, compiled.query, as_of, limits=sandbox,
                                location=segment.definition.body_location)
        ids = result.ids
    report = None
    con = warehouse.connect()
    try:
        if segment.kind == "file":
            source = import_path or segment.file
            if import_path is None and segment.file is not None and was_imported(
                    con, segment.name, content_hash(read_upload(segment.file, max_bytes),
                                                    segment.match, segment.column)):
                source = None
            if source is not None:
                target_dir = None if import_path is not None else report_dir
                if target_dir is not None:
                    target_dir.mkdir(parents=True, exist_ok=True)
                report = import_file(con, segment.name, source, segment.match,
                                     column=segment.column, max_bytes=max_bytes,
                                     report_dir=target_dir)
            elif not table_exists(con, "segments", "imported"):
                raise ValidationError(f"file segment '{segment.name}' has nothing imported yet: "
                                      f"run 'kequn segments import FILE --name {segment.name}'",
                                      segment.definition.location("name"))
        if ids is None:
            check_inputs(con, compiled, as_of)
            stats = write_members(con, segment.name, as_of, query=compiled.query,
                                  definition_hash=segment.definition_hash,
                                  unique=segment.kind == "rule")
        else:
            stats = write_members(con, segment.name, as_of, ids=ids,
                                  definition_hash=segment.definition_hash)
        if then is not None:
            then(con, stats)
    finally:
        con.close()
    return BuildResult(stats=stats, elapsed_s=time.perf_counter() - started,
                       import_report=report)
