"""Building tags in DuckDB: exact point-in-time values, agreement with an independent
computation, idempotence, subset builds, failures that leave data untouched."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kequn.errors import ExecutionError
from plan import compile_project
from plan.tags import TagPlan
from project.loader import load_project
from tags.build import build_day
from warehouse.db import connect

# (credit_granted, drawn, overdue, overdue_days) per customer, worked out by hand from
# the rows in conftest.py. 03-04 and 03-11 are days where a late payment arrives after
# the day (installments 201#2 paid 03-05, 204#2 paid 03-12).
EXPECTED = {
    date(2025, 3, 1): {1: (True, True, False, None), 2: (False, True, True, 9)},
    date(2025, 3, 4): {1: (True, True, True, 3), 2: (False, True, True, 12)},
    date(2025, 3, 5): {1: (True, True, False, None), 2: (False, True, True, 13)},
    date(2025, 3, 10): {1: (True, True, False, None), 2: (True, True, True, 18),
                        3: (False, False, False, None)},
    date(2025, 3, 11): {1: (True, True, False, None), 2: (True, True, True, 19),
                        3: (False, True, False, None), 4: (False, False, False, None)},
}
PRODUCT_TAGS = ("credit_granted", "drawn", "overdue", "overdue_days")


def wide(con: duckdb.DuckDBPyConnection, day: date, columns: tuple[str, ...] = PRODUCT_TAGS
         ) -> dict[int, tuple]:
    rows = con.execute(
        f"SELECT customer_id, {', '.join(columns)} FROM tags.customer_tags "
        "WHERE as_of = ? ORDER BY customer_id", [day]).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


@pytest.mark.parametrize("day", sorted(EXPECTED))
def test_product_tags_exact_values_point_in_time(tiny, plan: TagPlan, day: date) -> None:
    build_day(tiny, plan, day)
    assert wide(tiny, day) == EXPECTED[day]


def test_recomputing_a_day_later_gives_the_same_answer(tiny, plan: TagPlan) -> None:
    for day in EXPECTED:
        build_day(tiny, plan, day)
    before = {d: tiny.execute("SELECT * EXCLUDE (as_of) FROM tags.customer_tags WHERE as_of = ? "
                              "ORDER BY customer_id", [d]).fetchall() for d in EXPECTED}
    # Newer facts arrive: a payment, a new approval, a new loan, a new customer.
    tiny.execute("UPDATE raw.installments SET paid_at = TIMESTAMP '2025-03-20 10:00' "
                 "WHERE loan_id = 204 AND installment_no = 1")
    tiny.execute("INSERT INTO raw.credit_applications VALUES (106, 3, TIMESTAMP '2025-03-14 "
                 "10:00', TIMESTAMP '2025-03-15 10:00', 'APPROVED', 8000, 'SELF_APPLIED')")
    tiny.execute("INSERT INTO raw.loans VALUES (206, 4, TIMESTAMP '2025-03-16 10:00', TIMESTAMP "
                 "'2025-03-16 11:00', 'DISBURSED', NULL, 900, 3, 'A1', 'F1', 'APP')")
    tiny.execute("INSERT INTO raw.customers VALUES (6, 'f', TIMESTAMP '2025-03-13 10:00', 'APP', "
                 "'NORMAL', 'Hangzhou')")
    for day in EXPECTED:
        build_day(tiny, plan, day)
        after = tiny.execute("SELECT * EXCLUDE (as_of) FROM tags.customer_tags WHERE as_of = ? "
                             "ORDER BY customer_id", [day]).fetchall()
        assert after == before[day]
    # ...while a day after the new facts sees them: 204#1 paid 03-20, customer 3 approved
    # 03-15, customer 4 drew 03-16, customer 6 registered 03-13.
    later = date(2025, 3, 20)
    build_day(tiny, plan, later)
    assert wide(tiny, later) == {1: (True, True, False, None), 2: (True, True, False, None),
                                 3: (True, True, False, None), 4: (False, True, False, None),
                                 5: (False, False, False, None), 6: (False, False, False, None)}


def test_every_registered_customer_gets_one_row(tiny, plan: TagPlan) -> None:
    build_day(tiny, plan, date(2025, 3, 11))
    ids = [r[0] for r in tiny.execute("SELECT customer_id FROM tags.customer_tags").fetchall()]
    assert sorted(ids) == [1, 2, 3, 4]  # customer 5 registers at 03-12 00:00


def test_other_tags_exact_values(tiny, plan: TagPlan) -> None:
    day = date(2025, 3, 11)
    build_day(tiny, plan, day)
    got = wide(tiny, day, ("credit_limit", "application_count", "loan_count",
                           "active_loan_count", "failed_drawdown", "late_payment_count",
                           "granted_not_drawn", "is_staff", "registered_days", "m1_plus",
                           "risk_level", "pending_application", "rejected_recently"))
    from decimal import Decimal
    assert got[1] == (Decimal("20000"), 2, 2, 1, False, 1, False, False, 69, False, "RECOVERED",
                      False, False)
    assert got[2] == (Decimal("30000"), 1, 1, 1, True, 0, False, True, 65, False, "OVERDUE",
                      False, False)
    assert got[3] == (None, 2, 1, 1, False, 0, False, False, 1, False, "CLEAN", True, True)
    assert got[4] == (None, 0, 0, 0, False, 0, False, False, 0, False, "CLEAN", False, False)


def test_rebuilding_a_day_is_idempotent(tiny, plan: TagPlan) -> None:
    day = date(2025, 3, 11)
    build_day(tiny, plan, day)
    first = tiny.execute("SELECT * FROM tags.customer_tags ORDER BY customer_id").fetchall()
    build_day(tiny, plan, day)
    assert tiny.execute("SELECT * FROM tags.customer_tags ORDER BY customer_id").fetchall() \
        == first
    assert tiny.execute("SELECT count(*) FROM tags.catalog").fetchone()[0] == len(plan.tags)
    # the wide table is the only storage: no table per source
    assert tiny.execute("SELECT list(table_name ORDER BY table_name) FROM information_schema"
                        ".tables WHERE table_schema = 'tags' AND table_type = 'BASE TABLE'"
                        ).fetchone()[0] == ["catalog", "customer_tags", "distribution"]


def atomic_of(plan: TagPlan, source: str) -> list[str]:
    return list(next(g for g in plan.groups if g.key == source).tags)


def test_subset_build_keeps_the_other_tags_of_the_source(tiny, plan: TagPlan) -> None:
    day = date(2025, 3, 11)
    build_day(tiny, plan, day)
    others = [n for n in plan.tags if plan.tags[n].kind == "atomic" and n != "failed_drawdown"]
    before = wide(tiny, day, tuple(others))
    # facts that change other loan tags too: only the tag rebuilt may see them
    tiny.execute("UPDATE raw.loans SET status = 'DISBURSED' WHERE loan_id = 203")
    tiny.execute("UPDATE raw.loans SET disbursed_at = NULL WHERE customer_id = 1")
    result = build_day(tiny, plan, day, ["failed_drawdown"])
    assert result.computed == ("failed_drawdown",) and not result.missing
    assert wide(tiny, day, tuple(others)) == before
    assert set(wide(tiny, day, ("failed_drawdown",)).values()) == {(False,)}
    assert result.tags["failed_drawdown"].coverage == 0
    rebuilt = build_day(tiny, plan, day)  # a whole build sees the new fact everywhere
    assert wide(tiny, day, tuple(others)) != before and rebuilt.computed == tuple(
        n for n in plan.tags if plan.tags[n].kind == "atomic")


def test_one_tag_alone_on_an_empty_day(tiny, plan: TagPlan) -> None:
    day = date(2025, 3, 11)
    result = build_day(tiny, plan, day, ["drawn"])
    rows = tiny.execute("SELECT customer_id, drawn, loan_count, channel IS NOT NULL FROM "
                        "tags.customer_tags ORDER BY customer_id").fetchall()
    # loan_count was never computed for the day: its declared default; channel is a row
    # tag over raw.customers, computed with every write
    assert rows == [(1, True, 0, True), (2, True, 0, True), (3, True, 0, True),
                    (4, False, 0, True)]
    assert tiny.execute("SELECT count(*) FROM tags.tag_drawn").fetchone()[0] == 4
    assert "credit_granted" in result.missing and "overdue" in result.missing
    assert "drawn" not in result.missing and "channel" not in result.missing
    assert not build_day(tiny, plan, day, ["overdue"]).missing  # the day is stored now


def test_stats_report_coverage(tiny, plan: TagPlan) -> None:
    stats = build_day(tiny, plan, date(2025, 3, 11)).tags
    assert (stats["drawn"].coverage, stats["drawn"].customers) == (3, 4)
    assert stats["drawn"].coverage_ratio == 0.75
    # the declared default (0 loans) is not coverage: customer 4 has no loan
    assert stats["loan_count"].coverage == 3
    assert "FROM raw.loans" in stats["drawn"].sql


def _broken_loans(tmp_path: Path, plan: TagPlan) -> TagPlan:
    """The project's loan tags drawn and loan_count, loan_count's query not binding."""
    folder = tmp_path / "tags" / "loans"
    folder.mkdir(parents=True)
    for name in ("drawn", "loan_count"):
        src = (plan.tags[name].path).read_text(encoding="utf-8")
        if name == "loan_count":
            src = src.replace("count(*)", "count(no_such_column)")
        (folder / f"{name}.sql").write_text(src, encoding="utf-8")
    return compile_project(load_project(tmp_path)).tags


def test_a_failing_query_breaks_only_its_tag_and_keeps_its_stored_values(
        tiny, tmp_path: Path, plan: TagPlan) -> None:
    day = date(2025, 3, 11)
    build_day(tiny, plan, day)
    stored = wide(tiny, day, ("loan_count",))
    broken = _broken_loans(tmp_path, plan)
    tiny.execute("UPDATE raw.loans SET disbursed_at = NULL WHERE customer_id = 1")
    result = build_day(tiny, broken, day)
    assert list(result.failed) == ["loan_count"]
    error = result.failed["loan_count"]
    assert error.path == tmp_path / "tags" / "loans" / "loan_count.sql"
    assert "running tag(s) loan_count failed" in error.message
    assert result.computed == ("drawn",)
    assert wide(tiny, day, ("loan_count",)) == stored  # kept, not NULL
    assert wide(tiny, day, ("drawn",))[1] == (False,)  # the other tag was built


def test_a_failing_wide_build_writes_nothing(tiny, plan: TagPlan) -> None:
    day = date(2025, 3, 11)
    build_day(tiny, plan, day)
    before = tiny.execute("SELECT * FROM tags.customer_tags ORDER BY customer_id").fetchall()
    catalog = tiny.execute("SELECT * FROM tags.catalog ORDER BY name").fetchall()
    tiny.execute("ALTER TABLE raw.customers RENAME COLUMN channel TO channel_code")
    with pytest.raises(ExecutionError, match=r"building tags\.customer_tags failed"):
        build_day(tiny, plan, day)
    assert tiny.execute("SELECT * FROM tags.customer_tags ORDER BY customer_id"
                        ).fetchall() == before
    assert tiny.execute("SELECT * FROM tags.catalog ORDER BY name").fetchall() == catalog


# --- agreement with an independent computation on a generated warehouse ----------------

def independent(raw: dict[str, list[tuple]], day: date) -> dict[int, tuple]:
    """credit_granted, drawn, overdue, overdue_days computed in plain Python (architecture §4)."""
    end = datetime.combine(day + timedelta(days=1), datetime.min.time())
    out: dict[int, list] = {cid: [False, False, False, None]
                            for cid, registered in raw["customers"] if registered < end}
    for cid, decided, decision in raw["applications"]:
        if decision == "APPROVED" and decided is not None and decided < end and cid in out:
            out[cid][0] = True
    owner = {}
    for loan_id, cid, disbursed in raw["loans"]:
        owner[loan_id] = cid
        if disbursed is not None and disbursed < end and cid in out:
            out[cid][1] = True
    worst: dict[int, int] = defaultdict(int)
    for loan_id, due, paid in raw["installments"]:
        if due < day and (paid is None or paid >= end):
            cid = owner[loan_id]
            worst[cid] = max(worst[cid], (day - due).days)
    for cid, days in worst.items():
        if cid in out:
            out[cid][2], out[cid][3] = True, days
    return {cid: tuple(v) for cid, v in out.items()}


def test_agrees_with_independent_computation_on_generated_data(generated_copy,
                                                               plan: TagPlan) -> None:
    con = connect(generated_copy())
    raw = {
        "customers": con.execute("SELECT customer_id, registered_at FROM raw.customers").fetchall(),
        "applications": con.execute(
            "SELECT customer_id, decided_at, decision FROM raw.credit_applications").fetchall(),
        "loans": con.execute("SELECT loan_id, customer_id, disbursed_at FROM raw.loans").fetchall(),
        "installments": con.execute(
            "SELECT loan_id, due_date, paid_at FROM raw.installments").fetchall(),
    }
    days = [date(2024, 9, 30), date(2025, 1, 15), date(2025, 6, 30)]
    late_after_day = 0
    for day in days:
        build_day(con, plan, day)
        expected = independent(raw, day)
        assert wide(con, day) == expected
        end = datetime.combine(day + timedelta(days=1), datetime.min.time())
        late_after_day += sum(1 for _, due, paid in raw["installments"]
                              if due < day and paid is not None and paid >= end)
        assert any(v[0] for v in expected.values()) and any(v[2] for v in expected.values())
    assert late_after_day > 0  # payments that arrive after the day exist in the data
    con.close()


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_building_a_source_in_any_subsets_equals_one_full_build(tmp_path_factory,
                                                                plan: TagPlan,
                                                                data) -> None:
    from tests.tags.conftest import make_tiny_warehouse

    day = date(2025, 3, 11)
    names = atomic_of(plan, "loans")
    order = data.draw(st.permutations(names))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(names) - 1), max_size=3)))
    chunks = [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True)]
    folder = tmp_path_factory.mktemp("subsets")
    full = connect(make_tiny_warehouse(folder / "full.duckdb"))
    build_day(full, plan, day, names)
    parts = connect(make_tiny_warehouse(folder / "parts.duckdb"))
    for chunk in chunks:
        build_day(parts, plan, day, chunk)
    query = "SELECT * FROM tags.customer_tags ORDER BY customer_id"
    assert parts.execute(query).fetchall() == full.execute(query).fetchall()
    full.close()
    parts.close()


def test_a_subset_build_reads_only_the_days_stored_rows(tiny, plan: TagPlan) -> None:
    import json

    from plan.params import day_values, query

    for day in (date(2025, 3, 10), date(2025, 3, 11)):
        build_day(tiny, plan, day)
    subset = query(plan.wide_query(["drawn"]))
    explained = json.loads(tiny.execute(f"EXPLAIN (FORMAT json) {subset.sql}", subset.bind(
        day_values(date(2025, 3, 11)))).fetchall()[0][1])
    scans: dict[str, list[str]] = {}

    def walk(node: dict) -> None:
        extra = node.get("extra_info", {})
        if "Table" in extra:
            scans.setdefault(extra["Table"].split(".")[-1], []).append(str(extra.get("Filters")))
        for child in node.get("children", []):
            walk(child)

    for node in explained:
        walk(node)
    assert scans["customer_tags"] and all("as_of = '2025-03-11'" in f
                                          for f in scans["customer_tags"]), scans


def test_measure_reads_stored_values_without_building(tiny, plan: TagPlan) -> None:
    from tags.build import measure_tags

    day = date(2025, 3, 11)
    names = ["drawn", "loan_count", "channel", "credit_granted"]
    assert {n: s.coverage for n, s in measure_tags(tiny, plan, day, names).items()} == {
        "drawn": 0, "loan_count": 0, "channel": 0, "credit_granted": 0}  # nothing stored yet
    built = build_day(tiny, plan, day, ["drawn", "loan_count"]).tags
    tiny.execute("DELETE FROM raw.loans")  # measuring must not recompute
    measured = measure_tags(tiny, plan, day, ["drawn", "loan_count"])
    assert {n: (s.rows, s.coverage) for n, s in measured.items()} == {
        n: (built[n].rows, built[n].coverage) for n in ("drawn", "loan_count")}


def test_a_broken_tags_column_keeps_its_stored_values(tiny, plan: TagPlan) -> None:
    """A tag whose definition is broken is not built; its stored values of the day stay."""
    from plan.tags import compile_tags

    day = date(2025, 3, 11)
    build_day(tiny, plan, day)
    stored = wide(tiny, day, ("drawn",))
    out = {"drawn"}
    for tag in plan.tags.values():  # dependency order: drop what reads a dropped tag
        if tag.kind == "derived" and out & set(tag.depends_on):
            out.add(tag.name)
    broken = compile_tags({n: t for n, t in plan.tags.items() if n not in out},
                          broken=sorted(out), root=plan.root)
    tiny.execute("UPDATE raw.loans SET disbursed_at = NULL WHERE customer_id = 1")
    result = build_day(tiny, broken, day)
    assert wide(tiny, day, ("drawn",)) == stored  # kept, not NULL
    assert wide(tiny, day, ("loan_count",))[1] == (0,)  # the others are rebuilt
    assert "drawn" not in result.tags and not result.missing
