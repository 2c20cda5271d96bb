"""What a tag is once loaded: its metadata, its kind and its parsed SQL.

A tag is identified by its snake_case ``name``. An *atomic* tag is a SELECT over
``raw.*`` for an as-of day; a *derived* tag is an expression over other tags. Both
keep the file they came from so that every later error can point back at it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlglot import exp

from kequn.errors import Location

VALUE_TYPES = ("boolean", "integer", "decimal", "string", "date")
"""The declared value types of a tag (DESIGN §4)."""

SQL_TYPES = {
    "boolean": "BOOLEAN",
    "integer": "BIGINT",
    "decimal": "DECIMAL(18,4)",
    "string": "VARCHAR",
    "date": "DATE",
}
"""The DuckDB column type each value type is stored as."""

KINDS = ("atomic", "derived")

DefaultValue = bool | int | Decimal | str | date | None


@dataclass(frozen=True)
class Domain:
    """The values a tag may take beyond its type: allowed strings or a numeric range."""

    values: tuple[str, ...] = ()
    minimum: Decimal | None = None
    maximum: Decimal | None = None

    def is_open(self) -> bool:
        """True when nothing beyond the type is declared."""
        return not self.values and self.minimum is None and self.maximum is None


@dataclass(frozen=True, eq=False)
class Tag:
    """One loaded, validated tag definition."""

    name: str
    title: str
    description: str
    owner: str
    category_l1: str
    category_l2: str
    value_type: str
    kind: str
    definition_hash: str
    path: Path
    depends_on: tuple[str, ...] = ()
    """Tag names a derived tag reads (empty for atomic tags)."""
    source: str | None = None
    """``schema.table`` an atomic tag reads from (its FROM table), None for derived tags."""
    tables: tuple[str, ...] = ()
    """Every ``schema.table`` an atomic tag's query reads."""
    default: DefaultValue = None
    """Value for customers without a row (None: NULL, "does not apply")."""
    domain: Domain = field(default_factory=Domain)
    max_coverage_change: float = 0.5
    """Largest relative day-over-day coverage move the coverage check accepts."""
    query: exp.Query | None = None
    """Atomic: the parsed SELECT, ``$as_of``/``$as_of_end`` placeholders still in place."""
    expression: exp.Expression | None = None
    """Derived: the parsed expression over other tag names (columns)."""
    body_location: Location = field(default_factory=Location)

    @property
    def sql_type(self) -> str:
        """The DuckDB type of the tag's column."""
        return SQL_TYPES[self.value_type]

    @property
    def category(self) -> str:
        """``category_l1/category_l2``."""
        return f"{self.category_l1}/{self.category_l2}"


@dataclass(frozen=True)
class TagProject:
    """Every tag of a project, keyed by name, in dependency (topological) order."""

    root: Path
    tags: dict[str, Tag]

    def atomic(self) -> list[Tag]:
        """Atomic tags, in project order."""
        return [t for t in self.tags.values() if t.kind == "atomic"]

    def derived(self) -> list[Tag]:
        """Derived tags, each after the tags it reads."""
        return [t for t in self.tags.values() if t.kind == "derived"]

    def __getitem__(self, name: str) -> Tag:
        return self.tags[name]
