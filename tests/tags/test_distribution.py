"""Each tag's distribution for a day: top values or quartile buckets, one pass, stored."""

from __future__ import annotations

from datetime import date

import duckdb

from plan.tags import TagPlan
from tags.build import build_day
from tags.distribution import Bucket, store_distributions, tag_distributions

DAY = date(2025, 3, 11)


def test_buckets_cover_every_customer_and_are_stored(tiny: duckdb.DuckDBPyConnection,
                                                     plan: TagPlan) -> None:
    rows = build_day(tiny, plan, DAY).rows
    distributions = tag_distributions(tiny, plan.tags, DAY)
    assert set(distributions) == set(plan.tags)
    for name, buckets in distributions.items():
        assert sum(b.customers for b in buckets) == rows, name
    # drawn (boolean, default false): customers 1, 2 and 3 drew by 03-11, customer 4 did not
    assert distributions["drawn"] == [Bucket("true", 3), Bucket("false", 1)]
    # loan_count (integer, default 0): top values, most frequent first
    assert distributions["loan_count"][0].customers >= distributions["loan_count"][-1].customers
    # credit_limit (decimal): quartile ranges, and customers without a limit
    limits = distributions["credit_limit"]
    assert limits[0].bucket.startswith("[") and limits[-1].bucket == "(null)"

    written = store_distributions(tiny, DAY, distributions)
    again = store_distributions(tiny, DAY, distributions)  # a re-run replaces the day
    stored = tiny.execute("SELECT count(*), sum(customers) FROM tags.distribution "
                          "WHERE as_of = ? AND name = 'drawn'", [DAY]).fetchone()
    assert written == again == tiny.execute(
        "SELECT count(*) FROM tags.distribution WHERE as_of = ?", [DAY]).fetchone()[0]
    assert stored == (2, rows)


def test_the_builds_scan_gives_the_same_distributions(tiny: duckdb.DuckDBPyConnection,
                                                      plan: TagPlan) -> None:
    built = build_day(tiny, plan, DAY).distributions
    assert built == tag_distributions(tiny, plan.tags, DAY)
    assert {b.bucket for b in built["credit_limit"]} >= {"(null)"}


def test_boolean_buckets_are_the_values_counted(tiny: duckdb.DuckDBPyConnection,
                                                plan: TagPlan) -> None:
    """Booleans are counted with two ``count_if`` instead of a histogram: the same buckets."""
    build_day(tiny, plan, DAY)
    tiny.execute("UPDATE tags.customer_tags SET drawn = NULL WHERE customer_id = 4")
    tiny.execute("UPDATE tags.customer_tags SET overdue = true")
    got = tag_distributions(tiny, plan.tags, DAY)
    booleans = [n for n, t in plan.tags.items() if t.value_type == "boolean"]
    assert len(booleans) > 5
    for name in booleans:
        counted = tiny.execute(f"SELECT {name}, count(*) FROM tags.customer_tags "
                               "WHERE as_of = ? GROUP BY 1 ORDER BY 2 DESC, 1", [DAY]).fetchall()
        values = sorted(((str(v).lower(), n) for v, n in counted if v is not None),
                        key=lambda vn: (-vn[1], vn[0]))
        nulls = [("(null)", n) for v, n in counted if v is None]
        assert [(b.bucket, b.customers) for b in got[name]] == values + nulls, name
    assert [b.bucket for b in got["drawn"]][-1] == "(null)"
    assert [(b.bucket, b.customers) for b in got["overdue"]] == [("true", 4)]
