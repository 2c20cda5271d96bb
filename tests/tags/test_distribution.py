"""Each tag's distribution for a day: top values or quartile buckets, one pass, stored."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from unittest.mock import patch

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plan.tags import TagPlan
from tags import distribution
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


@pytest.mark.parametrize("exact_up_to", [1_000_000, 2])
def test_the_builds_scan_gives_the_same_distributions(tiny: duckdb.DuckDBPyConnection,
                                                      plan: TagPlan, exact_up_to: int) -> None:
    """The build's own scan and a separate pass agree, with exact or sampled cuts."""
    with patch.object(distribution, "EXACT_UP_TO", exact_up_to):
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


def _bounds(label: str, parse: Callable[[str], object]) -> tuple[str, object, object]:
    low, high = label[1:-1].split(", ")
    return label[0], parse(low), parse(high)


def _replace_rows(con: duckdb.DuckDBPyConnection, limits: list[Decimal | None],
                  dates: list[date | None]) -> None:
    con.execute("DELETE FROM tags.customer_tags WHERE as_of = ?", [DAY])
    con.executemany("INSERT INTO tags.customer_tags (as_of, customer_id, credit_limit, "
                    "first_drawn_date) VALUES (?, ?, ?, ?)",
                    [(DAY, i, lim, d) for i, (lim, d) in enumerate(zip(limits, dates,
                                                                        strict=True), 1)])


def _check_quartile_buckets(con: duckdb.DuckDBPyConnection, got: dict[str, list[Bucket]],
                            parsers: dict[str, Callable[[str], object]]) -> None:
    """Each bucket holds exactly the customers of its range, the ranges are increasing and
    touch, and with ``(null)`` they cover every row."""
    rows = con.execute("SELECT count(*) FROM tags.customer_tags WHERE as_of = ?",
                       [DAY]).fetchone()[0]
    for name, parse in parsers.items():
        buckets = got[name]
        ranges = [b for b in buckets if b.bucket != "(null)"]
        assert sum(b.customers for b in buckets) == rows, name
        previous = None
        for i, bucket in enumerate(ranges):
            bracket, low, high = _bounds(bucket.bucket, parse)
            assert bracket == ("[" if i == 0 else "("), bucket
            assert low <= high and (previous is None or low == previous), bucket
            previous = high
            above = ">=" if bracket == "[" else ">"
            counted = con.execute(f"SELECT count(*) FROM tags.customer_tags WHERE as_of = ? "
                                  f"AND {name} {above} ? AND {name} <= ?",
                                  [DAY, low, high]).fetchone()[0]
            assert bucket.customers == counted, (name, bucket)
        if ranges:
            low, high = con.execute(f"SELECT min({name}), max({name}) FROM tags.customer_tags "
                                    "WHERE as_of = ?", [DAY]).fetchone()
            assert (_bounds(ranges[0].bucket, parse)[1], previous) == (low, high), name


_limits = st.one_of(st.none(), st.sampled_from([Decimal("0.0000"), Decimal("500.0000")]),
                    st.decimals(min_value=0, max_value=99_999, places=4))
_dates = st.one_of(st.none(), st.dates(min_value=date(2024, 1, 1), max_value=date(2025, 3, 11)))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.tuples(_limits, _dates), min_size=1, max_size=60),
       exact_up_to=st.sampled_from([4, 1_000_000]))
def test_quartile_buckets_count_exactly_whatever_the_cuts(
        tiny: duckdb.DuckDBPyConnection, plan: TagPlan,
        values: list[tuple[Decimal | None, date | None]], exact_up_to: int) -> None:
    """Exact or sampled cuts, ties and NULLs: every bucket's count is its range's."""
    if not tiny.execute("SELECT count(*) FROM information_schema.tables "
                        "WHERE table_name = 'customer_tags'").fetchone()[0]:
        build_day(tiny, plan, DAY)
    _replace_rows(tiny, [v[0] for v in values], [v[1] for v in values])
    with patch.object(distribution, "EXACT_UP_TO", exact_up_to):
        got = tag_distributions(tiny, plan.tags, DAY)
    _check_quartile_buckets(tiny, got, {"credit_limit": Decimal,
                                        "first_drawn_date": date.fromisoformat})


def test_small_days_have_exact_quartiles_and_large_ones_a_fixed_sample(
        tiny: duckdb.DuckDBPyConnection, plan: TagPlan) -> None:
    """Up to EXACT_UP_TO rows the cuts are the day's quartiles; above, they come from the
    same customers on every run, and only the cuts move: the counts stay exact."""
    build_day(tiny, plan, DAY)
    limits = [Decimal(v) for v in range(1, 401)]
    _replace_rows(tiny, limits, [None] * len(limits))
    exact = tag_distributions(tiny, plan.tags, DAY)["credit_limit"]
    # quantile_disc of 1..400 at 0.25 / 0.5 / 0.75: 100, 200, 300
    assert [b.bucket for b in exact] == ["[1.0000, 100.0000]", "(100.0000, 200.0000]",
                                         "(200.0000, 300.0000]", "(300.0000, 400.0000]"]
    assert [b.customers for b in exact] == [100, 100, 100, 100]
    with patch.object(distribution, "EXACT_UP_TO", 40):  # 1 customer in 10 gives the cuts
        sampled = tag_distributions(tiny, plan.tags, DAY)
        assert tag_distributions(tiny, plan.tags, DAY) == sampled
    assert sampled["credit_limit"] != exact
    assert sum(b.customers for b in sampled["credit_limit"]) == 400
    _check_quartile_buckets(tiny, sampled, {"credit_limit": Decimal})
