"""The generated warehouse: schema (architecture §3), integrity, realism, determinism, atomicity."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pytest

import generate.build as build
from generate import default_end_date, generate_warehouse, phone_hash_for

from .conftest import CUSTOMERS, END, SEED

D = END
NEXT = END + timedelta(days=1)

# architecture §3, restated independently of generate.schema: (name, type, nullable).
EXPECTED_COLUMNS = {
    "customers": [
        ("customer_id", "BIGINT", False),
        ("phone_hash", "VARCHAR", False),
        ("registered_at", "TIMESTAMP", False),
        ("channel", "VARCHAR", False),
        ("customer_type", "VARCHAR", False),
        ("city", "VARCHAR", False),
    ],
    "credit_applications": [
        ("application_id", "BIGINT", False),
        ("customer_id", "BIGINT", False),
        ("applied_at", "TIMESTAMP", False),
        ("decided_at", "TIMESTAMP", True),
        ("decision", "VARCHAR", False),
        ("credit_limit", "DECIMAL(12,2)", True),
        ("credit_method", "VARCHAR", False),
    ],
    "loans": [
        ("loan_id", "BIGINT", False),
        ("customer_id", "BIGINT", False),
        ("applied_at", "TIMESTAMP", False),
        ("disbursed_at", "TIMESTAMP", True),
        ("status", "VARCHAR", False),
        ("settled_at", "TIMESTAMP", True),
        ("principal", "DECIMAL(12,2)", False),
        ("term_months", "INTEGER", False),
        ("asset_party", "VARCHAR", False),
        ("funding_party", "VARCHAR", False),
        ("channel", "VARCHAR", False),
    ],
    "installments": [
        ("loan_id", "BIGINT", False),
        ("installment_no", "INTEGER", False),
        ("due_date", "DATE", False),
        ("amount_due", "DECIMAL(12,2)", False),
        ("paid_at", "TIMESTAMP", True),
    ],
}
ENUMS = [
    ("customers", "channel", {"APP", "MINI_PROGRAM", "H5", "OFFLINE"}),
    ("customers", "customer_type", {"NORMAL", "STAFF", "H5_REFERRAL", "OFFLINE"}),
    ("credit_applications", "decision", {"APPROVED", "REJECTED", "PENDING"}),
    ("credit_applications", "credit_method", {"PRE_APPROVED", "SELF_APPLIED"}),
    ("loans", "status", {"DISBURSED", "FAILED", "SETTLED"}),
    ("loans", "channel", {"APP", "MINI_PROGRAM", "H5", "OFFLINE"}),
    ("loans", "term_months", {3, 6, 12}),
]
PRIMARY_KEYS = {
    "customers": ["customer_id"],
    "credit_applications": ["application_id"],
    "loans": ["loan_id"],
    "installments": ["loan_id", "installment_no"],
}


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    return con.execute(sql, params or []).fetchone()[0]


def test_stats_report_what_was_written(generated, con) -> None:
    assert generated.end_date == END
    assert generated.customers == CUSTOMERS
    for table, rows in generated.rows.items():
        assert scalar(con, f"SELECT count(*) FROM raw.{table}") == rows
    assert generated.rows["customers"] == CUSTOMERS


@pytest.mark.parametrize("table", EXPECTED_COLUMNS)
def test_columns_are_exactly_as_designed(con, table: str) -> None:
    rows = con.execute(
        "SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns "
        "WHERE table_schema = 'raw' AND table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    assert [tuple(r) for r in rows] == EXPECTED_COLUMNS[table]


@pytest.mark.parametrize("table", PRIMARY_KEYS)
def test_primary_keys_are_declared(con, table: str) -> None:
    keys = con.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() "
        "WHERE schema_name = 'raw' AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
        [table],
    ).fetchall()
    assert keys == [(PRIMARY_KEYS[table],)]


@pytest.mark.parametrize(("table", "column", "allowed"), ENUMS)
def test_enumerations_use_exactly_the_designed_values(con, table, column, allowed) -> None:
    values = {r[0] for r in con.execute(f"SELECT DISTINCT {column} FROM raw.{table}").fetchall()}
    assert values == allowed


def test_references_hold(con) -> None:
    orphans = {
        "applications": "SELECT count(*) FROM raw.credit_applications a "
        "ANTI JOIN raw.customers c USING (customer_id)",
        "loans": "SELECT count(*) FROM raw.loans l ANTI JOIN raw.customers c USING (customer_id)",
        "installments": "SELECT count(*) FROM raw.installments i "
        "ANTI JOIN raw.loans l USING (loan_id)",
        "applied before registering": "SELECT count(*) FROM raw.credit_applications a "
        "JOIN raw.customers c USING (customer_id) WHERE a.applied_at < c.registered_at",
        "decided before applied": "SELECT count(*) FROM raw.credit_applications "
        "WHERE decided_at < applied_at",
        "loan without an earlier approval": "SELECT count(*) FROM raw.loans l WHERE NOT EXISTS "
        "(SELECT 1 FROM raw.credit_applications a WHERE a.customer_id = l.customer_id "
        "AND a.decision = 'APPROVED' AND a.decided_at <= l.applied_at)",
        "paid before disbursed": "SELECT count(*) FROM raw.installments i "
        "JOIN raw.loans l USING (loan_id) WHERE i.paid_at < l.disbursed_at",
    }
    found = {name: scalar(con, sql) for name, sql in orphans.items()}
    assert found == dict.fromkeys(orphans, 0)


def test_decisions_limits_and_statuses_are_consistent(con) -> None:
    bad = {
        "pending with a decision time": "SELECT count(*) FROM raw.credit_applications "
        "WHERE (decision = 'PENDING') <> (decided_at IS NULL)",
        "limit iff approved": "SELECT count(*) FROM raw.credit_applications "
        "WHERE (decision = 'APPROVED') <> (credit_limit IS NOT NULL)",
        "failed iff not disbursed": "SELECT count(*) FROM raw.loans "
        "WHERE (status = 'FAILED') <> (disbursed_at IS NULL)",
        "settled iff settled_at": "SELECT count(*) FROM raw.loans "
        "WHERE (status = 'SETTLED') <> (settled_at IS NOT NULL)",
        "settled with unpaid installments": "SELECT count(*) FROM raw.loans l "
        "JOIN raw.installments i USING (loan_id) WHERE l.status = 'SETTLED' AND i.paid_at IS NULL",
        "disbursed with everything paid": "SELECT count(*) FROM raw.loans l WHERE "
        "status = 'DISBURSED' AND NOT EXISTS (SELECT 1 FROM raw.installments i "
        "WHERE i.loan_id = l.loan_id AND i.paid_at IS NULL)",
    }
    found = {name: scalar(con, sql) for name, sql in bad.items()}
    assert found == dict.fromkeys(bad, 0)


def test_schedules_are_monthly_and_sum_to_the_principal(con) -> None:
    rows = con.execute(
        """
        SELECT l.loan_id, l.term_months, l.principal, l.disbursed_at::DATE,
               count(i.loan_id), min(i.installment_no), max(i.installment_no),
               sum(i.amount_due), min(i.due_date), max(i.due_date)
        FROM raw.loans l LEFT JOIN raw.installments i USING (loan_id)
        GROUP BY ALL
        """
    ).fetchall()
    for _, term, principal, disbursed, count, first, last, total, due1, due_n in rows:
        if disbursed is None:
            assert count == 0
            continue
        assert (count, first, last, total) == (term, 1, term, principal)
        assert 28 <= (due1 - disbursed).days <= 31
        assert 28 * term <= (due_n - disbursed).days <= 31 * term


def test_amounts_are_the_principal_split_evenly(con) -> None:
    worst = scalar(
        con,
        "SELECT max(abs(i.amount_due - l.principal / l.term_months)) FROM raw.installments i "
        "JOIN raw.loans l USING (loan_id) WHERE i.installment_no < l.term_months",
    )
    assert worst < 0.01


def test_nothing_happens_after_the_end_date(con) -> None:
    columns = [
        ("customers", "registered_at"),
        ("credit_applications", "applied_at"),
        ("credit_applications", "decided_at"),
        ("loans", "applied_at"),
        ("loans", "disbursed_at"),
        ("loans", "settled_at"),
        ("installments", "paid_at"),
    ]
    for table, column in columns:
        assert scalar(con, f"SELECT count(*) FROM raw.{table} WHERE {column} >= ?", [NEXT]) == 0


def test_history_spans_more_than_eighteen_months_up_to_the_last_day(generated, con) -> None:
    first = scalar(con, "SELECT min(registered_at) FROM raw.customers")
    assert (END - first.date()).days >= 548
    assert generated.start_date <= first.date()
    # Something happens on the last day itself.
    for table, column in [("customers", "registered_at"), ("installments", "paid_at"),
                          ("loans", "disbursed_at"), ("credit_applications", "decided_at")]:
        assert scalar(con, f"SELECT count(*) FROM raw.{table} WHERE {column}::DATE = ?", [D]) > 0


SHARES_SQL = """
WITH everyone AS (SELECT count(*) AS n FROM raw.customers WHERE registered_at < $next)
SELECT
  (SELECT count(DISTINCT customer_id) FROM raw.credit_applications
   WHERE decision = 'APPROVED' AND decided_at < $next) / n,
  (SELECT count(DISTINCT customer_id) FROM raw.loans WHERE disbursed_at < $next) / n,
  (SELECT count(DISTINCT l.customer_id) FROM raw.installments i JOIN raw.loans l USING (loan_id)
   WHERE i.due_date < $day AND (i.paid_at IS NULL OR i.paid_at >= $next)) / n
FROM everyone
"""


def test_shares_on_the_last_day_are_realistic(con) -> None:
    granted, drawn, overdue = con.execute(SHARES_SQL, {"day": D, "next": NEXT}).fetchone()
    assert 0.28 <= granted <= 0.40
    assert 0.20 <= drawn <= 0.30
    assert 0.02 <= overdue <= 0.06


def test_shares_a_year_earlier_are_smaller_but_present(con) -> None:
    day = D - timedelta(days=365)
    granted, drawn, overdue = con.execute(
        SHARES_SQL, {"day": day, "next": day + timedelta(days=1)}
    ).fetchone()
    assert 0.2 <= granted <= 0.45 and 0.1 <= drawn <= 0.35 and 0.005 <= overdue <= 0.08


def test_every_kind_of_event_is_present(con) -> None:
    kinds = {
        "late payment": "SELECT count(*) FROM raw.installments WHERE paid_at >= due_date + 1",
        "late by more than a month": "SELECT count(*) FROM raw.installments "
        "WHERE paid_at >= due_date + 31",
        "never paid, long due": "SELECT count(*) FROM raw.installments "
        "WHERE paid_at IS NULL AND due_date < $day - 90",
        "paid on or before due": "SELECT count(*) FROM raw.installments "
        "WHERE paid_at < due_date + 1",
        "failed drawdown": "SELECT count(*) FROM raw.loans WHERE status = 'FAILED'",
        "settled early": "SELECT count(*) FROM raw.loans l WHERE status = 'SETTLED' AND "
        "settled_at < (SELECT max(due_date) FROM raw.installments i WHERE i.loan_id = l.loan_id)",
        "repeat borrower": "SELECT count(*) FROM (SELECT customer_id FROM raw.loans "
        "GROUP BY ALL HAVING count(*) > 1)",
        "reapplied after rejection": "SELECT count(*) FROM (SELECT customer_id FROM "
        "raw.credit_applications GROUP BY ALL HAVING count(*) > 1)",
        "installments due after the end": "SELECT count(*) FROM raw.installments "
        "WHERE due_date > $day",
    }
    counts = {k: scalar(con, sql.replace("$day", "DATE '2025-06-30'")) for k, sql in kinds.items()}
    assert all(counts.values()), counts


def test_descriptive_columns_vary(con) -> None:
    for table, column, at_least in [("customers", "city", 10), ("loans", "asset_party", 2),
                                    ("loans", "funding_party", 3), ("loans", "channel", 3)]:
        assert scalar(con, f"SELECT count(DISTINCT {column}) FROM raw.{table}") >= at_least


def test_point_in_time_matters_overdue_ten_days_ago_then_paid(con) -> None:
    earlier = D - timedelta(days=10)
    recovered = scalar(
        con,
        """
        SELECT count(DISTINCT l.customer_id)
        FROM raw.installments i JOIN raw.loans l USING (loan_id)
        WHERE i.due_date < ? AND i.paid_at >= ? AND i.paid_at < ?
        """,
        [earlier, earlier + timedelta(days=1), NEXT],
    )
    assert recovered > 10


def test_stored_hashes_are_the_hashes_of_the_derivable_phones(con) -> None:
    ids = [1, 2, 3, 999, CUSTOMERS]
    stored = dict(
        con.execute(
            "SELECT customer_id, phone_hash FROM raw.customers WHERE customer_id IN "
            "(SELECT unnest(?))",
            [ids],
        ).fetchall()
    )
    assert stored == {i: phone_hash_for(i, SEED) for i in ids}
    assert scalar(con, "SELECT count(DISTINCT phone_hash) FROM raw.customers") == CUSTOMERS


def test_same_seed_gives_identical_tables(tmp_path: Path, table_digest) -> None:
    first, second, other = (tmp_path / f"{n}.duckdb" for n in ("a", "b", "c"))
    generate_warehouse(first, customers=3000, seed=5, end_date=END)
    generate_warehouse(second, customers=3000, seed=5, end_date=END)
    generate_warehouse(other, customers=3000, seed=6, end_date=END)
    assert table_digest(first) == table_digest(second)
    differing = table_digest(first), table_digest(other)
    assert all(differing[0][t] != differing[1][t] for t in differing[0])


def test_a_new_warehouse_replaces_the_old_tables(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    generate_warehouse(path, customers=3000, seed=1, end_date=END)
    stats = generate_warehouse(path, customers=2000, seed=2, end_date=END)
    con = duckdb.connect(str(path), read_only=True)
    try:
        for table, rows in stats.rows.items():
            assert scalar(con, f"SELECT count(*) FROM raw.{table}") == rows
    finally:
        con.close()


def test_a_failure_midway_leaves_the_previous_tables(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "w.duckdb"
    before = generate_warehouse(path, customers=1500, seed=1, end_date=END)
    monkeypatch.setattr(build, "BLOCK_CUSTOMERS", 1000)
    real = build.block_tables
    calls = []

    def fail_on_second_block(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full (injected)")
        return real(*args, **kwargs)

    monkeypatch.setattr(build, "block_tables", fail_on_second_block)
    with pytest.raises(OSError, match="injected"):
        generate_warehouse(path, customers=5000, seed=2, end_date=END)
    con = duckdb.connect(str(path), read_only=True)
    try:
        after = {t: scalar(con, f"SELECT count(*) FROM raw.{t}") for t in before.rows}
    finally:
        con.close()
    assert after == before.rows


def test_at_least_one_customer_is_required(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate_warehouse(tmp_path / "w.duckdb", customers=0, seed=1)
    assert not (tmp_path / "w.duckdb").exists()


def test_tiny_warehouses_work(tmp_path: Path) -> None:
    for n in (1, 2, 7):
        stats = generate_warehouse(tmp_path / f"{n}.duckdb", customers=n, seed=n, end_date=END)
        assert stats.rows["customers"] == n


def test_default_end_date_is_yesterday_in_shanghai(tmp_path: Path) -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    # 17:00 UTC on 31 December is already 1 January in Shanghai.
    assert default_end_date(datetime(2025, 12, 31, 17, 0, tzinfo=ZoneInfo("UTC"))) == date(
        2025, 12, 31
    )
    assert default_end_date(datetime(2025, 12, 31, 23, 0, tzinfo=shanghai)) == date(2025, 12, 30)
    stats = generate_warehouse(tmp_path / "w.duckdb", customers=50, seed=1)
    assert stats.end_date == default_end_date()


def test_blocks_continue_ids_across_block_boundaries(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(build, "BLOCK_CUSTOMERS", 700)
    stats = generate_warehouse(tmp_path / "w.duckdb", customers=2000, seed=3, end_date=END)
    con = duckdb.connect(str(stats.path), read_only=True)
    try:
        for table, key in [("customers", "customer_id"), ("credit_applications", "application_id"),
                           ("loans", "loan_id")]:
            ids = np.array([r[0] for r in con.execute(f"SELECT {key} FROM raw.{table}").fetchall()])
            assert sorted(ids.tolist()) == list(range(1, stats.rows[table] + 1))
    finally:
        con.close()


def test_pending_applications_are_recent(con) -> None:
    oldest = scalar(
        con, "SELECT min(applied_at) FROM raw.credit_applications WHERE decision = 'PENDING'"
    )
    assert oldest is not None
    assert (NEXT - oldest.date()).days <= 15


def test_a_warehouse_locked_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    from kequn.errors import ExecutionError

    path = tmp_path / "w.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('ready', flush=True); time.sleep(60)", str(path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(ExecutionError) as caught:
            generate_warehouse(path, customers=10, seed=1, end_date=END, wait_s=0.5)
    finally:
        holder.kill()
        holder.wait()
    assert str(path) in caught.value.render()
    assert "cannot open the warehouse for writing" in caught.value.render()
