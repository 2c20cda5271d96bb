"""The data checks behind the Dagster asset checks, on crafted data."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import duckdb
from sqlglot import exp

from plan.tags import TagPlan
from tags import checks
from tags.build import build_day

DAY = date(2025, 3, 11)
WIDE = exp.to_table("tags.customer_tags")


def test_one_row_per_customer(tiny: duckdb.DuckDBPyConnection, plan: TagPlan) -> None:
    build_day(tiny, plan, DAY)
    assert checks.one_row_per_customer(tiny, WIDE, DAY).passed
    loans = plan.relation(plan.group_of("drawn"))  # a source's rows, computed by its query
    assert checks.one_row_per_customer(tiny, loans, DAY).passed
    tiny.execute("INSERT INTO tags.customer_tags (as_of, customer_id) "
                 "VALUES (DATE '2025-03-11', 1)")
    outcome = checks.one_row_per_customer(tiny, WIDE, DAY)
    assert not outcome.passed and outcome.metadata["duplicate_rows"] == 1


def test_wide_table_must_hold_every_registered_customer(tiny: duckdb.DuckDBPyConnection,
                                                         plan: TagPlan) -> None:
    build_day(tiny, plan, DAY)
    assert checks.one_row_per_customer(tiny, WIDE, DAY, every_customer=True).passed
    tiny.execute("DELETE FROM tags.customer_tags WHERE customer_id = 4")
    outcome = checks.one_row_per_customer(tiny, WIDE, DAY, every_customer=True)
    assert not outcome.passed
    assert outcome.description == ("tags.customer_tags has 3 customers for 2025-03-11, "
                                   "expected 4 registered customers")


def test_values_in_domain(tiny: duckdb.DuckDBPyConnection, plan: TagPlan) -> None:
    build_day(tiny, plan, DAY)
    view = plan.relation(plan.group_of("channel"))  # row tags over raw.customers: computed
    assert checks.values_in_domain(tiny, view, plan.tags["channel"], DAY).passed
    tiny.execute("UPDATE raw.customers SET channel = 'FAX' WHERE customer_id = 1")
    bad = checks.values_in_domain(tiny, view, plan.tags["channel"], DAY)
    assert not bad.passed and bad.description == (
        "1 values of channel are outside its domain (e.g. FAX)")
    table = WIDE
    assert checks.values_in_domain(tiny, table, plan.tags["loan_count"], DAY).passed
    tiny.execute("UPDATE tags.customer_tags SET loan_count = -3 WHERE customer_id = 1")
    assert not checks.values_in_domain(tiny, table, plan.tags["loan_count"], DAY).passed


def test_values_in_domain_checks_the_stored_type(tiny: duckdb.DuckDBPyConnection,
                                                 plan: TagPlan) -> None:
    build_day(tiny, plan, DAY)
    tiny.execute("DROP VIEW tags.tag_drawn")  # it reads the column
    tiny.execute("ALTER TABLE tags.customer_tags ALTER drawn TYPE INTEGER "
                 "USING drawn::INTEGER")
    outcome = checks.values_in_domain(tiny, WIDE, plan.tags["drawn"], DAY)
    assert not outcome.passed
    assert outcome.description == "column drawn of tags.customer_tags is INTEGER, " \
                                  "declared boolean (BOOLEAN)"


def test_coverage_stable(tiny: duckdb.DuckDBPyConnection, plan: TagPlan) -> None:
    drawn = plan.tags["drawn"]
    assert not checks.coverage_stable(tiny, drawn, DAY, 0, 0.0).passed
    assert checks.coverage_stable(tiny, drawn, DAY, 3, 0.75).passed  # no previous day
    previous = date(2025, 3, 10)
    build_day(tiny, plan, previous)  # drawn covers 2 of 3 on 03-10
    assert checks.coverage_stable(tiny, drawn, DAY, 3, 0.75).passed
    jump = checks.coverage_stable(tiny, drawn, DAY, 4, 1.2)
    assert not jump.passed
    assert jump.description == "coverage of drawn moved from 66.67% to 120.00% (more than 50%)"
    strict = replace(drawn, max_coverage_change=0.1)
    assert not checks.coverage_stable(tiny, strict, DAY, 3, 0.75).passed


def test_checks_from_the_build_scan_equal_checks_that_scan(tiny: duckdb.DuckDBPyConnection,
                                                           plan: TagPlan) -> None:
    """The build's statistics scan counts what the checks need (rows, distinct customers,
    out-of-domain values); the checks fed those counts answer exactly as when they scan."""
    from tags.build import measure_tags

    build_day(tiny, plan, DAY)
    tiny.execute("UPDATE tags.customer_tags SET channel = 'FAX' WHERE customer_id = 1")
    tiny.execute("UPDATE tags.customer_tags SET loan_count = -3 WHERE customer_id = 2")
    tiny.execute("INSERT INTO tags.customer_tags (as_of, customer_id, loan_count) "
                 "VALUES (DATE '2025-03-11', 1, 1)")
    for name in ("channel", "loan_count", "drawn"):
        stats = measure_tags(tiny, plan, DAY, [name])[name]
        tag = plan.tags[name]
        scanned = checks.values_in_domain(tiny, WIDE, tag, DAY)
        counted = checks.values_in_domain(tiny, WIDE, tag, DAY,
                                          out_of_domain=stats.out_of_domain)
        assert scanned == counted
        rows = checks.one_row_per_customer(tiny, WIDE, DAY)
        assert rows == checks.one_row_per_customer(
            tiny, WIDE, DAY, counts=(stats.relation_rows, stats.relation_customers))
    assert not checks.values_in_domain(
        tiny, WIDE, plan.tags["channel"], DAY,
        out_of_domain=measure_tags(tiny, plan, DAY, ["channel"])["channel"].out_of_domain,
    ).passed
    assert measure_tags(tiny, plan, DAY, ["drawn"])["drawn"].out_of_domain is None
    loans = measure_tags(tiny, plan, DAY, ["loan_count"])["loan_count"]
    assert (loans.out_of_domain, loans.relation_rows - loans.relation_customers) == (1, 1)
