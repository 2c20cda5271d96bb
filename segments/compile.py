"""One compiled query per segment, whatever its kind (pure: no DuckDB, no Dagster).

Every kind becomes a sqlglot query returning ``customer_id`` for the day bound to
``$as_of``: a rule reads ``tags.customer_tags``, a combine reads ``segments.members``,
a file segment reads ``segments.imported``, and an analyst's SQL is the gated query.
The same tree renders for DuckDB, Spark or Trino (``kequn segments compile``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlglot import exp

from kequn.errors import ValidationError, did_you_mean
from segments.combine import compile_combine
from segments.load import rule_offset
from segments.model import Segment
from segments.rule import compile_rule
from segments.sandbox import gate

DIALECTS = ("duckdb", "spark", "trino")


@dataclass(frozen=True)
class CompiledSegment:
    """A segment's query and what it reads (for lineage and explain)."""

    segment: Segment
    query: exp.Query
    tags: list[str] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    condition: exp.Expression | None = None

    def sql(self, dialect: str = "duckdb", *, pretty: bool = True) -> str:
        """The query in ``dialect`` (duckdb, spark or trino)."""
        if dialect not in DIALECTS:
            raise ValidationError(f"unknown dialect '{dialect}' (one of {', '.join(DIALECTS)})",
                                  hint=did_you_mean(dialect, DIALECTS))
        return self.query.sql(dialect=dialect, pretty=pretty)


def imported_query(name: str) -> exp.Select:
    """``SELECT customer_id FROM segments.imported WHERE segment = '<name>'``."""
    return (exp.select("customer_id").from_(exp.table_("imported", db="segments"))
            .where(exp.EQ(this=exp.column("segment"), expression=exp.Literal.string(name))))


def compile_segment(segment: Segment, tag_types: Mapping[str, str] | None) -> CompiledSegment:
    """Compile ``segment``; raises located KequnErrors for a bad rule or a rejected SQL."""
    defn = segment.definition
    if segment.kind == "rule":
        rule = compile_rule(segment.rule, tag_types, path=defn.path, source=defn.text,
                            offset=rule_offset(segment))
        return CompiledSegment(segment, rule.query, tags=rule.tags,
                               tables=["tags.customer_tags"], condition=rule.condition)
    if segment.kind == "sql":
        query = gate(segment.sql, defn.path, defn.text)
        return CompiledSegment(segment, query, tables=tables_read(query))
    if segment.kind == "combine":
        assert segment.combine is not None
        return CompiledSegment(segment, compile_combine(segment.combine),
                               segments=segment.referenced_segments(),
                               tables=["segments.members"])
    return CompiledSegment(segment, imported_query(segment.name), tables=["segments.imported"])


def tables_read(query: exp.Expression) -> list[str]:
    """``schema.table`` names a (gated) query reads, sorted; CTE names excluded."""
    names = {f"{t.db}.{t.name}".lower() for t in query.find_all(exp.Table) if t.db}
    return sorted(names)
