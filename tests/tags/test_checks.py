"""The data checks behind the Dagster asset checks, on crafted data."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import duckdb
from sqlglot import exp

from plan.tags import TagPlan
from tags import checks
from tags.build import build_customer_tags, build_tags

DAY = date(2025, 3, 11)
LOANS = exp.to_table("tags._src_loans")
WIDE = exp.to_table("tags.customer_tags")


def test_one_row_per_customer(tiny: duckdb.DuckDBPyConnection, plan: TagPlan) -> None:
    build_tags(tiny, plan, DAY)
    assert checks.one_row_per_customer(tiny, LOANS, DAY).passed
    tiny.execute("INSERT INTO tags._src_loans (as_of, customer_id) VALUES (DATE '2025-03-11', 1)")
    outcome = checks.one_row_per_customer(tiny, LOANS, DAY)
    assert not outcome.passed and outcome.metadata["duplicate_rows"] == 1


def test_wide_table_must_hold_every_registered_customer(tiny: duckdb.DuckDBPyConnection,
                                                         plan: TagPlan) -> None:
    build_tags(tiny, plan, DAY)
    build_customer_tags(tiny, plan, DAY)
    assert checks.one_row_per_customer(tiny, WIDE, DAY, every_customer=True).passed
    tiny.execute("DELETE FROM tags.customer_tags WHERE customer_id = 4")
    outcome = checks.one_row_per_customer(tiny, WIDE, DAY, every_customer=True)
    assert not outcome.passed
    assert outcome.description == ("tags.customer_tags has 3 customers for 2025-03-11, "
                                   "expected 4 registered customers")


def test_values_in_domain(tiny: duckdb.DuckDBPyConnection, plan: TagPlan) -> None:
    build_tags(tiny, plan, DAY)
    view = plan.relation(plan.group_of("channel"))  # row tags over raw.customers: computed
    assert checks.values_in_domain(tiny, view, plan.tags["channel"], DAY).passed
    tiny.execute("UPDATE raw.customers SET channel = 'FAX' WHERE customer_id = 1")
    bad = checks.values_in_domain(tiny, view, plan.tags["channel"], DAY)
    assert not bad.passed and bad.description == (
        "1 values of channel are outside its domain (e.g. FAX)")
    table = LOANS
    assert checks.values_in_domain(tiny, table, plan.tags["loan_count"], DAY).passed
    tiny.execute("UPDATE tags._src_loans SET loan_count = -3 WHERE customer_id = 1")
    assert not checks.values_in_domain(tiny, table, plan.tags["loan_count"], DAY).passed


def test_values_in_domain_checks_the_stored_type(tiny: duckdb.DuckDBPyConnection,
                                                 plan: TagPlan) -> None:
    build_tags(tiny, plan, DAY)
    tiny.execute("ALTER TABLE tags._src_loans ALTER drawn TYPE INTEGER USING drawn::INTEGER")
    outcome = checks.values_in_domain(tiny, LOANS, plan.tags["drawn"], DAY)
    assert not outcome.passed
    assert outcome.description == "column drawn of tags._src_loans is INTEGER, " \
                                  "declared boolean (BOOLEAN)"


def test_coverage_stable(tiny: duckdb.DuckDBPyConnection, plan: TagPlan) -> None:
    drawn = plan.tags["drawn"]
    assert not checks.coverage_stable(tiny, drawn, DAY, 0, 0.0).passed
    assert checks.coverage_stable(tiny, drawn, DAY, 3, 0.75).passed  # no previous day
    previous = date(2025, 3, 10)
    build_tags(tiny, plan, previous)
    build_customer_tags(tiny, plan, previous)  # drawn covers 2 of 3 on 03-10
    assert checks.coverage_stable(tiny, drawn, DAY, 3, 0.75).passed
    jump = checks.coverage_stable(tiny, drawn, DAY, 4, 1.2)
    assert not jump.passed
    assert jump.description == "coverage of drawn moved from 66.67% to 120.00% (more than 50%)"
    strict = replace(drawn, max_coverage_change=0.1)
    assert not checks.coverage_stable(tiny, strict, DAY, 3, 0.75).passed
