"""The four ``raw.*`` tables exactly as architecture §3: column names, types, keys, enums.

The DDL is built as sqlglot expressions from :data:`TABLES`, so the contract lives
in one place and tests compare the created tables against it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

SCHEMA = "raw"


@dataclass(frozen=True)
class Column:
    """One column of a raw table: its DuckDB type and whether it may be NULL."""

    name: str
    type: str
    nullable: bool = False


@dataclass(frozen=True)
class Table:
    """One raw table: its columns in order and its primary key."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return f"{SCHEMA}.{self.name}"


CHANNELS = ("APP", "MINI_PROGRAM", "H5", "OFFLINE")
CUSTOMER_TYPES = ("NORMAL", "STAFF", "H5_REFERRAL", "OFFLINE")
DECISIONS = ("APPROVED", "REJECTED", "PENDING")
CREDIT_METHODS = ("PRE_APPROVED", "SELF_APPLIED")
LOAN_STATUSES = ("DISBURSED", "FAILED", "SETTLED")
TERMS = (3, 6, 12)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "customers",
            (
                Column("customer_id", "BIGINT"),
                Column("phone_hash", "VARCHAR"),
                Column("registered_at", "TIMESTAMP"),
                Column("channel", "VARCHAR"),
                Column("customer_type", "VARCHAR"),
                Column("city", "VARCHAR"),
            ),
            ("customer_id",),
        ),
        Table(
            "credit_applications",
            (
                Column("application_id", "BIGINT"),
                Column("customer_id", "BIGINT"),
                Column("applied_at", "TIMESTAMP"),
                Column("decided_at", "TIMESTAMP", nullable=True),
                Column("decision", "VARCHAR"),
                Column("credit_limit", "DECIMAL(12,2)", nullable=True),
                Column("credit_method", "VARCHAR"),
            ),
            ("application_id",),
        ),
        Table(
            "loans",
            (
                Column("loan_id", "BIGINT"),
                Column("customer_id", "BIGINT"),
                Column("applied_at", "TIMESTAMP"),
                Column("disbursed_at", "TIMESTAMP", nullable=True),
                Column("status", "VARCHAR"),
                Column("settled_at", "TIMESTAMP", nullable=True),
                Column("principal", "DECIMAL(12,2)"),
                Column("term_months", "INTEGER"),
                Column("asset_party", "VARCHAR"),
                Column("funding_party", "VARCHAR"),
                Column("channel", "VARCHAR"),
            ),
            ("loan_id",),
        ),
        Table(
            "installments",
            (
                Column("loan_id", "BIGINT"),
                Column("installment_no", "INTEGER"),
                Column("due_date", "DATE"),
                Column("amount_due", "DECIMAL(12,2)"),
                Column("paid_at", "TIMESTAMP", nullable=True),
            ),
            ("loan_id", "installment_no"),
        ),
    )
}
"""Every raw table, in load order (customers first)."""


def table_expression(table: Table, name: str | None = None) -> exp.Table:
    """``raw.<name>`` as a sqlglot table (``name`` defaults to the table's own)."""
    return exp.table_(name or table.name, db=SCHEMA)


def create_table_sql(table: Table, name: str | None = None, *, primary_key: bool = True) -> str:
    """``CREATE TABLE raw.<name> (...)`` in DuckDB SQL, with NOT NULLs and the key.

    >>> print(create_table_sql(TABLES["installments"]))  # doctest: +NORMALIZE_WHITESPACE
    CREATE TABLE raw.installments (loan_id BIGINT NOT NULL, installment_no INT NOT NULL,
    due_date DATE NOT NULL, amount_due DECIMAL(12, 2) NOT NULL, paid_at TIMESTAMP,
    PRIMARY KEY (loan_id, installment_no))
    """
    defs: list[exp.Expression] = []
    for column in table.columns:
        constraints = []
        if not column.nullable:
            constraints.append(exp.ColumnConstraint(kind=exp.NotNullColumnConstraint()))
        defs.append(
            exp.ColumnDef(
                this=exp.to_identifier(column.name),
                kind=exp.DataType.build(column.type, dialect="duckdb"),
                constraints=constraints,
            )
        )
    if primary_key:
        defs.append(exp.PrimaryKey(expressions=[exp.to_identifier(c) for c in table.primary_key]))
    create = exp.Create(
        this=exp.Schema(this=table_expression(table, name), expressions=defs),
        kind="TABLE",
    )
    return create.sql(dialect="duckdb")


def drop_table_sql(table: Table) -> str:
    """``DROP TABLE IF EXISTS raw.<name>``.

    >>> drop_table_sql(TABLES["loans"])
    'DROP TABLE IF EXISTS raw.loans'
    """
    drop = exp.Drop(tables=[table_expression(table)], kind="TABLE", exists=True)
    return drop.sql(dialect="duckdb")
