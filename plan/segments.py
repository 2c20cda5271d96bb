"""One compiled query per segment, whatever its kind (pure: no DuckDB, no Dagster).

Every kind becomes a sqlglot query returning ``customer_id`` for the day bound to
``$as_of``: a rule reads ``tags.customer_tags``, a combine reads ``segments.members``,
a file segment reads ``segments.imported``, and an analyst's SQL is the query the gate
accepted. The same tree renders for DuckDB, Spark or Trino (``kequn segments compile``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from kequn.errors import ValidationError, did_you_mean
from kequn.tables import CUSTOMER_TAGS, IMPORTED, MEMBERS, qualified
from plan.division import exact_division, without_hugeint
from plan.params import as_of
from project.combine import CombineExpr, SegmentRef, SetOp
from project.segment import Segment

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
    """A rule's condition over the wide table's columns (quoted)."""

    def sql(self, dialect: str = "duckdb", *, pretty: bool = True) -> str:
        """The query in ``dialect`` (duckdb, spark or trino)."""
        if dialect not in DIALECTS:
            raise ValidationError(f"unknown dialect '{dialect}' (one of {', '.join(DIALECTS)})",
                                  hint=did_you_mean(dialect, DIALECTS))
        query = self.query if dialect == "duckdb" else without_hugeint(self.query)
        return query.sql(dialect=dialect, pretty=pretty)


def _table(table: tuple[str, str]) -> exp.Table:
    return exp.table_(table[1], db=table[0])


def rule_query(condition: exp.Expression) -> tuple[exp.Expression, exp.Select]:
    """The rule's condition with tag columns quoted, and ``SELECT customer_id FROM
    tags.customer_tags WHERE as_of = $as_of AND (<condition>)``.

    >>> import sqlglot
    >>> rule_query(sqlglot.parse_one("drawn AND NOT a"))[1].sql("duckdb")
    'SELECT customer_id FROM tags.customer_tags WHERE as_of = $as_of AND ("drawn" AND NOT "a")'
    """
    quoted = condition.copy()
    for column in quoted.find_all(exp.Column):
        column.this.set("quoted", True)
    query = exp.select("customer_id").from_(_table(CUSTOMER_TAGS)).where(exp.and_(
        exp.EQ(this=exp.column("as_of"), expression=as_of()),
        exp.paren(exact_division(quoted))))
    return quoted, query


def members_of(name: str) -> exp.Select:
    """``SELECT customer_id FROM segments.members WHERE segment = '<name>' AND as_of = $as_of``."""
    return exp.select("customer_id").from_(_table(MEMBERS)).where(exp.and_(
        exp.EQ(this=exp.column("segment"), expression=exp.Literal.string(name)),
        exp.EQ(this=exp.column("as_of"), expression=as_of()),
    ))


def combine_query(node: CombineExpr) -> exp.Query:
    """The set expression as one SQL query returning distinct ``customer_id``.

    >>> from project.combine import parse_combine_text
    >>> type(combine_query(parse_combine_text("a EXCEPT b"))).__name__
    'Except'
    """
    if isinstance(node, SegmentRef):
        return members_of(node.name)
    assert isinstance(node, SetOp)
    left = combine_query(node.left)
    right = combine_query(node.right)
    if isinstance(node.left, SetOp):
        left = exp.select("customer_id").from_(left.subquery("l"))
    if isinstance(node.right, SetOp):
        right = exp.select("customer_id").from_(right.subquery("r"))
    cls = {"union": exp.Union, "intersect": exp.Intersect, "except": exp.Except}[node.op]
    return cls(this=left, expression=right, distinct=True)


def imported_query(name: str) -> exp.Select:
    """``SELECT customer_id FROM segments.imported WHERE segment = '<name>'``."""
    return exp.select("customer_id").from_(_table(IMPORTED)).where(
        exp.EQ(this=exp.column("segment"), expression=exp.Literal.string(name)))


def compile_segment(segment: Segment) -> CompiledSegment:
    """The query of a loaded (checked) segment, and what it reads."""
    if segment.kind == "rule":
        assert segment.condition is not None
        condition, query = rule_query(segment.condition)
        return CompiledSegment(segment, query, tags=list(segment.tags),
                               tables=[qualified(CUSTOMER_TAGS)], condition=condition)
    if segment.kind == "sql":
        assert segment.query is not None
        return CompiledSegment(segment, exact_division(segment.query), tables=segment.tables)
    if segment.kind == "combine":
        assert segment.combine is not None
        return CompiledSegment(segment, combine_query(segment.combine),
                               segments=segment.referenced_segments(),
                               tables=[qualified(MEMBERS)])
    return CompiledSegment(segment, imported_query(segment.name),
                           tables=[qualified(IMPORTED)])
