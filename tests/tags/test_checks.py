"""The data checks behind the Dagster asset checks, on crafted data."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import duckdb

from tags import checks
from tags.build import build_customer_tags, build_tags
from tags.model import TagProject

DAY = date(2025, 3, 11)


def test_one_row_per_customer(tiny: duckdb.DuckDBPyConnection, project: TagProject) -> None:
    build_tags(tiny, project, DAY)
    assert checks.one_row_per_customer(tiny, "tags._src_loans", DAY).passed
    tiny.execute("INSERT INTO tags._src_loans (as_of, customer_id) VALUES (DATE '2025-03-11', 1)")
    outcome = checks.one_row_per_customer(tiny, "tags._src_loans", DAY)
    assert not outcome.passed and outcome.metadata["duplicate_rows"] == 1


def test_wide_table_must_hold_every_registered_customer(tiny: duckdb.DuckDBPyConnection,
                                                         project: TagProject) -> None:
    build_tags(tiny, project, DAY)
    build_customer_tags(tiny, project, DAY)
    assert checks.one_row_per_customer(tiny, "tags.customer_tags", DAY, every_customer=True).passed
    tiny.execute("DELETE FROM tags.customer_tags WHERE customer_id = 4")
    outcome = checks.one_row_per_customer(tiny, "tags.customer_tags", DAY, every_customer=True)
    assert not outcome.passed
    assert outcome.description == ("tags.customer_tags has 3 customers for 2025-03-11, "
                                   "expected 4 registered customers")


def test_values_in_domain(tiny: duckdb.DuckDBPyConnection, project: TagProject) -> None:
    build_tags(tiny, project, DAY)
    view = "tags._src_customers"  # row tags over raw.customers: a view of the built day
    assert checks.values_in_domain(tiny, view, project["channel"], DAY).passed
    tiny.execute("UPDATE raw.customers SET channel = 'FAX' WHERE customer_id = 1")
    bad = checks.values_in_domain(tiny, view, project["channel"], DAY)
    assert not bad.passed and bad.description == (
        "1 values of channel are outside its domain (e.g. FAX)")
    table = "tags._src_loans"
    assert checks.values_in_domain(tiny, table, project["loan_count"], DAY).passed
    tiny.execute(f"UPDATE {table} SET loan_count = -3 WHERE customer_id = 1")
    assert not checks.values_in_domain(tiny, table, project["loan_count"], DAY).passed


def test_values_in_domain_checks_the_stored_type(tiny: duckdb.DuckDBPyConnection,
                                                 project: TagProject) -> None:
    build_tags(tiny, project, DAY)
    tiny.execute("ALTER TABLE tags._src_loans ALTER drawn TYPE INTEGER USING drawn::INTEGER")
    outcome = checks.values_in_domain(tiny, "tags._src_loans", project["drawn"], DAY)
    assert not outcome.passed
    assert outcome.description == "column drawn of tags._src_loans is INTEGER, " \
                                  "declared boolean (BOOLEAN)"


def test_coverage_stable(tiny: duckdb.DuckDBPyConnection, project: TagProject) -> None:
    drawn = project["drawn"]
    assert not checks.coverage_stable(tiny, drawn, DAY, 0, 0.0).passed
    assert checks.coverage_stable(tiny, drawn, DAY, 3, 0.75).passed  # no previous day
    previous = date(2025, 3, 10)
    build_tags(tiny, project, previous)
    build_customer_tags(tiny, project, previous)  # drawn covers 2 of 3 on 03-10
    assert checks.coverage_stable(tiny, drawn, DAY, 3, 0.75).passed
    jump = checks.coverage_stable(tiny, drawn, DAY, 4, 1.2)
    assert not jump.passed
    assert jump.description == "coverage of drawn moved from 66.67% to 120.00% (more than 50%)"
    strict = replace(drawn, max_coverage_change=0.1)
    assert not checks.coverage_stable(tiny, strict, DAY, 3, 0.75).passed
