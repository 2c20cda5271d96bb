"""The tag tables whose columns follow the definitions: shaped from the plan, as sqlglot.

``tags.customer_tags`` is the wide table (one column per tag, the only place tag values
are stored) and ``tags.tag_<name>`` a view per tag over it. Their columns change when
tags are added, retyped or removed, so they are shaped here from the
:class:`~plan.tags.TagPlan` instead of by a fixed migration (:mod:`warehouse.schema` holds
the fixed tables). Every statement is built as a sqlglot tree; names are identifiers,
never pasted text.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
from sqlglot import exp

KEY_COLUMNS = (("as_of", "DATE"), ("customer_id", "BIGINT"))


def _normal_type(text: str) -> str:
    return text.replace(" ", "").upper().replace("TEXT", "VARCHAR")


def _split(table: str) -> tuple[str, str]:
    schema, name = table.split(".")
    return schema, name


def existing_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str] | None:
    """``{column: type}`` of ``table`` in order, or None when it does not exist."""
    schema, name = _split(table)
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema, name],
    ).fetchall()
    return {col: _normal_type(kind) for col, kind in rows} if rows else None


def _column(name: str, kind: str) -> exp.ColumnDef:
    return exp.ColumnDef(this=exp.to_identifier(name), kind=exp.DataType.build(kind,
                                                                              dialect="duckdb"))


def _alter(table: str, action: exp.Expression) -> str:
    return exp.Alter(this=exp.to_table(table), kind="TABLE", actions=[action]).sql("duckdb")


def _drop_column(table: str, column: str) -> str:
    return _alter(table, exp.Drop(tables=[exp.column(column)], kind="COLUMN"))


def ensure_table(con: duckdb.DuckDBPyConnection, table: str, columns: list[tuple[str, str]],
                 *, keep: Iterable[str] = ()) -> dict[str, str] | None:
    """Make ``table`` hold the key columns plus ``columns`` with their types; return the
    columns it had before (:func:`existing_columns`; None when it is created now).

    Missing columns are added; a column of a changed type is replaced (its old values
    belonged to another definition); a column of a tag that no longer exists is dropped,
    unless it is in ``keep`` (a tag whose definition is broken keeps what it stored).
    """
    existing = existing_columns(con, table)
    if existing is None:
        schema = exp.Schema(this=exp.to_table(table),
                            expressions=[_column(c, t) for c, t in [*KEY_COLUMNS, *columns]])
        con.execute(exp.Create(this=schema, kind="TABLE").sql("duckdb"))
        return None
    wanted = {c for c, _ in [*KEY_COLUMNS, *columns]} | set(keep)
    for column in existing:
        if column not in wanted:
            con.execute(_drop_column(table, column))
    for column, kind in columns:
        have = existing.get(column)
        if have is not None and have != _normal_type(kind):
            con.execute(_drop_column(table, column))
            have = None
        if have is None:
            con.execute(_alter(table, _column(column, kind)))
    return existing


def tag_view(con: duckdb.DuckDBPyConnection, name: str, table: str) -> None:
    """``tags.tag_<name>``: ``(as_of, customer_id, <name>)`` read from ``table``."""
    view = exp.Create(
        this=exp.table_(exp.to_identifier(f"tag_{name}"), db="tags"), kind="VIEW", replace=True,
        expression=exp.select("as_of", "customer_id", exp.column(name)).from_(
            exp.to_table(table)))
    con.execute(view.sql("duckdb"))
