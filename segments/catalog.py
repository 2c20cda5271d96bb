"""Checking analysts' SQL against the warehouse's catalog: unknown tables and columns.

The gate (:mod:`project.sql_gate`) knows which schemas a query may read but not which
tables and columns exist. When a warehouse file exists, :func:`catalog_problems` opens it
read-only and reports each unknown ``schema.table`` or column at the name's position in
the definition file, with a "did you mean". Nothing is executed or written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from sqlglot import exp
from sqlglot.errors import OptimizeError

from kequn.errors import KequnError, Location, ValidationError, did_you_mean
from kequn.sqlsource import node_location
from project.segment import Segment

Catalog = dict[str, dict[str, dict[str, str]]]
"""schema -> table -> column -> type."""

_SCHEMAS = ("raw", "tags", "segments")


def read_catalog(warehouse: Path) -> Catalog | None:
    """The tables and columns of the readable schemas, or None when the warehouse does
    not exist or another process holds it (then nothing can be checked)."""
    if not warehouse.is_file():
        return None
    import duckdb

    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error:
        return None
    try:
        rows = con.execute(
            "SELECT table_schema, table_name, column_name, data_type "
            "FROM information_schema.columns WHERE table_schema IN ('raw', 'tags', 'segments')"
        ).fetchall()
    finally:
        con.close()
    catalog: Catalog = {s: {} for s in _SCHEMAS}
    for schema, table, column, kind in rows:
        catalog[schema.lower()].setdefault(table.lower(), {})[column.lower()] = kind
    return catalog


def catalog_problems(catalog: Catalog, segments: Iterable[Segment],
                     pending_columns: Iterable[str] = (), *,
                     allow_pending: bool = True, day: str = "DAY") -> list[KequnError]:
    """One located error per unknown table or column in the sql segments' queries.

    ``pending_columns`` are names that will exist once built (tags defined but not built
    yet): with ``allow_pending`` they are not reported (validation); without, they are
    reported as tags to build first (a preview or a run needs them now).
    """
    pending = {c.lower() for c in pending_columns}
    problems: list[KequnError] = []
    for segment in segments:
        if segment.kind != "sql" or segment.query is None:
            continue
        found = _query_problems(catalog, segment, pending if allow_pending else set())
        if not allow_pending:
            found = [_as_unbuilt_tag(e, pending, day) for e in found]
        problems.extend(found)
    return problems


def _as_unbuilt_tag(error: KequnError, pending: set[str], day: str) -> KequnError:
    match = re.match(r"column '([^']+)'", error.message)
    if not match or match.group(1).lower() not in pending:
        return error
    return ValidationError(f"tag '{match.group(1)}' is defined but not built yet: run kequn "
                           f"materialize --as-of {day} --select 'key:tags/*'", error.location)


def _query_problems(catalog: Catalog, segment: Segment, pending: set[str]) -> list[KequnError]:
    path, text = segment.definition.path, segment.definition.text
    found: list[KequnError] = []
    for table in segment.query.find_all(exp.Table):
        if not table.db or not isinstance(table.this, exp.Identifier):
            continue
        schema, name = table.db.lower(), table.name.lower()
        tables = catalog.get(schema, {})
        if name not in tables:
            hint = did_you_mean(name, tables) or did_you_mean(
                f"{schema}.{name}", [f"{s}.{t}" for s in catalog for t in catalog[s]])
            found.append(ValidationError(
                f"table '{schema}.{name}' does not exist in the warehouse",
                node_location(table, path, text), hint=hint))
    if found:
        return found
    from sqlglot.optimizer.qualify import qualify

    schema_map = {s: {t: dict(cols) for t, cols in tables.items()}
                  for s, tables in catalog.items() if tables}
    for col in pending:
        for t in schema_map.get("tags", {}).values():
            t.setdefault(col, "BOOLEAN")
    try:
        qualify(segment.query.copy(), schema=schema_map, dialect="duckdb",
                validate_qualify_columns=True, quote_identifiers=False)
    except OptimizeError as exc:
        return [_column_error(str(exc), segment, catalog, path, text)]
    except Exception:  # the optimizer cannot analyse it; running it will say what is wrong
        return []
    return []


_UNRESOLVED = re.compile(r"Column '([^']+)' could not be resolved(?: for table: '([^']+)')?"
                         r"(?:\. Line: (\d+), Col: (\d+))?")


def _column_error(message: str, segment: Segment, catalog: Catalog, path: Path,
                  text: str) -> KequnError:
    match = _UNRESOLVED.search(message)
    if not match:
        return ValidationError("a column of the query is not in the warehouse",
                               segment.definition.body_location)
    column, table, line, col = match.groups()
    read = {t.name.lower(): t.db.lower() for t in segment.query.find_all(exp.Table) if t.db}
    choices = sorted({c for t, s in read.items() for c in catalog.get(s, {}).get(t, {})})
    where: Location = segment.definition.body_location
    if line and col:
        where = Location(path, int(line), max(int(col) - len(column) + 1, 1), text)
    else:
        node = next((c for c in segment.query.find_all(exp.Column)
                     if c.name.lower() == column.lower()), None)
        if node is not None:
            where = node_location(node, path, text)
    of = f" of '{table}'" if table else ""
    return ValidationError(f"column '{column}'{of} does not exist in the tables the query "
                           "reads", where, hint=did_you_mean(column.lower(), choices))



def warehouse_problems(warehouse: Path, segments: Iterable[Segment],
                       pending_columns: Iterable[str] = (), *,
                       allow_pending: bool = True, day: str = "DAY") -> list[KequnError]:
    """:func:`catalog_problems` against the warehouse file, or [] when there is none."""
    catalog = read_catalog(warehouse)
    return [] if catalog is None else catalog_problems(catalog, segments, pending_columns,
                                                       allow_pending=allow_pending, day=day)
