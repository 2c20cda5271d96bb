"""The SQL gate: every rejection with a clear, located message, and what it accepts."""

from __future__ import annotations

import pytest

from kequn.errors import KequnError, KequnErrors
from project.sql_gate import gate


def rejection(sql: str) -> str:
    with pytest.raises(KequnError) as info:
        gate(sql)
    found = info.value.errors if isinstance(info.value, KequnErrors) else [info.value]
    return found[0].headline()


@pytest.mark.parametrize(("sql", "message"), [
    ("SELECT customer_id FROM raw.customers; DROP TABLE raw.customers",
     "<input>:1:40: exactly one statement is allowed, found 2 (a second one starts here: DROP)"),
    ("SELECT customer_id FROM raw.customers -- harmless?\n; DELETE FROM raw.loans",
     "<input>:2:3: exactly one statement is allowed, found 2 (a second one starts here: "
     "DELETE)"),
    ("SELECT customer_id FROM raw.customers /* ; */ ; SELECT 1",
     "<input>:1:49: exactly one statement is allowed, found 2 (a second one starts here: "
     "SELECT)"),
    ("WITH gone AS (DELETE FROM raw.customers RETURNING customer_id) "
     "SELECT customer_id FROM gone", "<input>:1:27: DELETE is not allowed (queries only)"),
    ("WITH x AS (INSERT INTO raw.loans SELECT * FROM raw.loans RETURNING customer_id) "
     "SELECT customer_id FROM x", "<input>:1:24: INSERT is not allowed (queries only)"),
    ("CREATE TABLE raw.x AS SELECT 1 AS customer_id",
     "<input>:1:1: only a SELECT is allowed, not CREATE"),
    ("UPDATE raw.customers SET city = 'x'", "<input>:1:1: only a SELECT is allowed, not UPDATE"),
    ("DROP TABLE raw.customers", "<input>:1:1: only a SELECT is allowed, not DROP"),
    ("COPY raw.customers TO '/tmp/out.csv'", "<input>:1:1: only a SELECT is allowed, not COPY"),
    ("ATTACH '/tmp/other.duckdb' AS o", "<input>:1:1: only a SELECT is allowed, not ATTACH"),
    ("INSTALL httpfs", "<input>:1:1: only a SELECT is allowed, not INSTALL"),
    ("LOAD httpfs", "<input>:1:1: only a SELECT is allowed, not LOAD statement"),
    ("PRAGMA database_list", "<input>:1:1: only a SELECT is allowed, not PRAGMA"),
    ("SET enable_external_access = true", "<input>:1:1: only a SELECT is allowed, not SET"),
    ("SELECT customer_id FROM read_csv('/etc/passwd')",
     "<input>:1:25: table function read_csv() is not allowed (read tables of raw, tags or "
     "segments.members)"),
    ("SELECT customer_id FROM read_parquet('https://example.com/x.parquet')",
     "<input>:1:25: table function read_parquet() is not allowed (read tables of raw, tags or "
     "segments.members)"),
    ("SELECT customer_id FROM raw.customers WHERE customer_id IN "
     "(SELECT customer_id FROM read_json('/tmp/x.json'))",
     "<input>:1:85: table function read_json() is not allowed (read tables of raw, tags or "
     "segments.members)"),
    ("SELECT customer_id FROM '/etc/passwd'",
     "<input>:1:25: table '/etc/passwd' is not allowed (read raw.*, tags.* or segments.members, "
     "or a CTE of this query visible here)"),
    ("SELECT customer_id FROM query('SELECT 1 AS customer_id')",
     "<input>:1:25: table function query() is not allowed (read tables of raw, tags or "
     "segments.members)"),
    ("SELECT customer_id FROM query_table('raw.customers')",
     "<input>:1:25: table function query_table() is not allowed (read tables of raw, tags or "
     "segments.members)"),
    ("SELECT customer_id FROM range(10) AS t(customer_id)",
     "<input>:1:25: table function generate_series() is not allowed (read tables of raw, tags "
     "or segments.members)"),
    ("SELECT customer_id FROM raw.customers WHERE getenv('HOME') IS NOT NULL",
     "<input>:1:45: function getenv() is not allowed in a segment query (it reads, writes, "
     "configures or reveals something outside the query)"),
    ("SELECT customer_id FROM main.secrets",
     "<input>:1:25: table 'main.secrets' is outside the allowed schemas (raw.*, tags.*, "
     "segments.members)"),
    ("SELECT customer_id FROM information_schema.tables",
     "<input>:1:25: table 'information_schema.tables' is outside the allowed schemas (raw.*, "
     "tags.*, segments.members)"),
    ("SELECT customer_id FROM segments.favorites",
     "<input>:1:25: table 'segments.favorites' is not allowed (of segments only members)"),
    ("SELECT customer_id FROM customers",
     "<input>:1:25: table 'customers' is not allowed (read raw.*, tags.* or segments.members, "
     "or a CTE of this query visible here)"),
    ("SELECT customer_id FROM other.raw.customers",
     "<input>:1:25: 'other.raw.customers': name tables as schema.table (raw.*, tags.*, "
     "segments.members)"),
    ("SELECT * FROM raw.customers", "<input>:1:8: SELECT * is not allowed; select customer_id"),
    ("SELECT customer_id, city FROM raw.customers",
     "<input>:1:21: the query must return exactly one column, customer_id; it returns 2"),
    ("SELECT city FROM raw.customers",
     "<input>:1:8: the output column must be named customer_id, not 'city' (add AS customer_id)"),
    ("SELECT customer_id FROM raw.customers WHERE x = $other",
     "<input>:1:49: unknown parameter '$other' (only $as_of, the day being built)"),
    ("", "<input>:1:1: the SQL is empty; write one SELECT returning customer_id"),
])
def test_gate_rejects(sql: str, message: str) -> None:
    assert rejection(sql) == message


@pytest.mark.parametrize("sql", [
    "WITH a AS (SELECT customer_id FROM raw.loans WHERE status = 'SETTLED') "
    "SELECT a.customer_id FROM a JOIN raw.customers c ON c.customer_id = a.customer_id",
    "SELECT customer_id FROM raw.customers WHERE customer_id IN "
    "(SELECT customer_id FROM tags.customer_tags WHERE as_of = $as_of AND overdue)",
    "SELECT customer_id FROM raw.loans UNION SELECT customer_id FROM raw.credit_applications "
    "EXCEPT SELECT customer_id FROM segments.members WHERE segment = 'vip_list'",
    "SELECT customer_id FROM (SELECT customer_id, sum(principal) AS s FROM raw.loans "
    "GROUP BY customer_id) AS t WHERE s > 1000 ORDER BY customer_id LIMIT 10",
    "SELECT customer_id FROM raw.loans GROUP BY customer_id HAVING count(*) >= 2 -- trailing\n",
    "SELECT customer_id FROM raw.loans; -- a trailing comment is fine",
    "SELECT customer_id FROM raw.loans QUALIFY row_number() OVER "
    "(PARTITION BY customer_id ORDER BY applied_at) = 1",
    "SELECT l.customer_id AS customer_id FROM raw.loans l LEFT JOIN raw.installments i "
    "USING (loan_id) WHERE i.paid_at IS NULL AND i.due_date < CAST($as_of AS DATE)",
])
def test_gate_accepts(sql: str) -> None:
    assert gate(sql).sql()
