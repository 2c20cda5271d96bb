"""Turning an upload's rows into match keys: pick the column, normalise each value for
the match mode, hash phones at once, and report every row that is not a key.

Phones (``+86``, spaces, dashes, full-width digits) are normalised and turned into their
SHA-256 at once: the raw numbers live only in memory here, never in a table, a log or a
report. Each row is valid, a duplicate of an earlier row, or rejected with a reason. The
normalisation runs in an in-memory DuckDB (vectorised), never in the warehouse.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from kequn.errors import ImportFileError, Location
from project.segment import MATCH_MODES
from segments.imports.decode import FORMULA_MARK, Lines, Rows, read_rows, read_upload
from segments.imports.report import RowIssue, mask

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
"""The size cap when none is given (the setting ``import_max_bytes`` has the same default)."""
HEADER_NAMES = {
    "id": ("customer_id", "id", "客户号", "客户id", "客户编号"),
    "phone": ("phone", "mobile", "phone_number", "手机", "手机号", "手机号码", "电话"),
    "phone_hash": ("phone_hash", "hash", "sha256", "手机号哈希"),
}


@dataclass
class ParsedUpload:
    """An uploaded file read and normalised; ``keys`` holds (row_no, key) of first occurrences."""

    path: Path
    match: str
    content_hash: str
    rows: int
    keys: pa.Table
    issues: list[RowIssue] = field(default_factory=list)
    encoding: str = "utf-8"
    delimiter: str = ","
    header: bool = False

    @property
    def rejected(self) -> int:
        return sum(1 for i in self.issues if i.status == "rejected")

    @property
    def duplicate(self) -> int:
        return sum(1 for i in self.issues if i.status == "duplicate")


def _choose_column(rows: Rows, match: str, column: str,
                   path: Path) -> tuple[int, bool]:
    """(column index, whether row 1 is a header)."""
    first = [c.strip().lower() for c in rows[0]] if len(rows) else []
    if column:
        if column.lower() in first:
            return first.index(column.lower()), True
        raise ImportFileError(f"the header has no column '{column}' (found: {', '.join(first)})",
                              Location(path, 1))
    for name in HEADER_NAMES[match]:
        if name in first:
            return first.index(name), True
    if first and first[0] and not _looks_valid(first[0], match) and not any(
            ch.isdigit() for ch in first[0]):
        return 0, True  # a label row such as 'name'
    return 0, False


_VALID = {
    "id": re.compile(r"^\s*\d+\s*$"),
    "phone": re.compile(r"^[\d\s+()\-]{11,}$"),
    "phone_hash": re.compile(r"^[0-9a-fA-F]{64}$"),
}


def _looks_valid(value: str, match: str) -> bool:
    return bool(_VALID[match].match(value.strip()))


_NORMALISE_SQL = {
    "phone": r"""
        WITH p AS (SELECT row_no, value,
                          CASE WHEN regexp_full_match(value, '1[3-9][0-9]{9}') THEN value
                               ELSE regexp_replace(value, '[\s\-().]', '', 'g') END AS d
                   FROM input),
        q AS (SELECT row_no, value,
                     CASE WHEN length(d) = 11 THEN d
                          WHEN d[1] = '+' AND d[2:3] = '86' THEN d[4:]
                          WHEN d[1:4] = '0086' THEN d[5:]
                          WHEN length(d) = 13 AND d[1:2] = '86' THEN d[3:]
                          ELSE d END AS n FROM p),
        v AS (SELECT row_no, value, n, regexp_full_match(n, '1[3-9][0-9]{9}') AS ok FROM q)
        SELECT row_no,
               CASE WHEN ok THEN NULL
                    WHEN value = '' THEN 'empty value'
                    WHEN value LIKE '{MARK}%' THEN '{FORMULA}'
                    WHEN regexp_full_match(n, '[0-9.]+[eE]\+?[0-9]+')
                      THEN 'scientific notation has lost digits; format the column as text'
                    WHEN NOT regexp_full_match(n, '[0-9]+')
                      THEN 'not a phone number (letters or symbols)'
                    WHEN length(n) <> 11
                      THEN 'a mobile number has 11 digits, found ' || length(n)
                    ELSE 'not a mainland mobile number (13x-19x)'
               END AS reason,
               CASE WHEN ok THEN CAST(n AS BIGINT) END AS key
        FROM v""",
    "id": r"""
        WITH p AS (SELECT row_no, value, regexp_replace(value, '\s', '', 'g') AS n FROM input)
        SELECT row_no,
               CASE WHEN value = '' THEN 'empty value'
                    WHEN value LIKE '{MARK}%' THEN '{FORMULA}'
                    WHEN regexp_full_match(n, '[0-9.]+[eE]\+?[0-9]+')
                      THEN 'scientific notation has lost digits; format the column as text'
                    WHEN NOT regexp_full_match(n, '[0-9]+')
                      THEN 'a customer id has digits only'
                    WHEN length(ltrim(n, '0')) > 18 THEN 'customer id too long'
               END AS reason,
               CASE WHEN regexp_full_match(n, '[0-9]{1,18}')
                      OR regexp_full_match(n, '0+[0-9]{1,18}')
                    THEN CAST(n AS BIGINT) END AS key
        FROM p""",
    "phone_hash": r"""
        WITH p AS (SELECT row_no, value, lower(value) AS n FROM input)
        SELECT row_no,
               CASE WHEN value = '' THEN 'empty value'
                    WHEN value LIKE '{MARK}%' THEN '{FORMULA}'
                    WHEN NOT regexp_full_match(n, '[0-9a-f]{64}')
                      THEN 'a phone hash is 64 hexadecimal characters (SHA-256)'
               END AS reason,
               CASE WHEN regexp_full_match(n, '[0-9a-f]{64}') THEN n END AS key
        FROM p""",
}


_FORMULA = ("a formula without a saved value (open and save the workbook in Excel, or paste "
            "the column as values)")
_NORMALISE_SQL = {k: v.replace("{FORMULA}", _FORMULA).replace("{MARK}", FORMULA_MARK)
                  for k, v in _NORMALISE_SQL.items()}

_KEY_OUT = {
    # phones are deduplicated as numbers, then hashed once each (as stored in raw.customers)
    "phone": "sha256(CAST(key AS VARCHAR))",
    "id": "CAST(key AS VARCHAR)",
    "phone_hash": "key",
}


def content_hash(data: bytes, match: str, column: str = "") -> str:
    """Identity of an upload: SHA-256 of its bytes with the match mode and column."""
    return hashlib.sha256(data + f"\0{match}\0{column}".encode()).hexdigest()


def parse_upload(path: Path, match: str, *, column: str = "",
                 max_bytes: int = DEFAULT_MAX_BYTES) -> ParsedUpload:
    """Read, decode and normalise an upload; raw phones exist only in memory here.

    Raises ImportFileError (naming the file) for a file over the size cap, an unknown
    encoding or file type, a symbolic link or non-regular file, a workbook that would
    expand past the cap, a file without data rows, or one where no row is a valid key
    (naming the column and a sample). Other row-level problems do not raise: they come
    back in ``issues`` with the row number and reason.
    """
    if match not in MATCH_MODES:
        raise ImportFileError(f"unknown match mode '{match}' (one of {', '.join(MATCH_MODES)})",
                              Location(path))
    data = read_upload(path, max_bytes)
    digest = content_hash(data, match, column)
    rows, encoding, delimiter = read_rows(path, data, max_bytes)
    col, header = _choose_column(rows, match, column, path)
    start = 1 if header else 0
    if isinstance(rows, Lines):
        values = rows.lines[start:]
        blank = None  # one column: a blank line is an empty value
    elif all(len(row) == 1 for row in rows[start:start + 1000]) and col == 0 and all(
            len(row) <= 1 for row in rows):
        values = [row[0] if row else "" for row in rows[start:]]
        blank = None
    else:
        body = rows[start:]
        values = [row[col] if col < len(row) else "" for row in body]
        blank = [not any(c.strip() for c in row) for row in body]
    first_row = start + 1
    table = pa.table({
        "row_no": pa.array(np.arange(first_row, first_row + len(values), dtype=np.int64)),
        "raw": pa.array(values, pa.string()),
        "blank": pa.array(blank, pa.bool_()) if blank is not None
        else pa.nulls(len(values), pa.bool_()),
    })
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        con.register("upload", table)
        con.execute("""CREATE TEMP VIEW input AS
            SELECT row_no, trim(raw) AS value FROM upload
            WHERE NOT coalesce(blank, trim(raw) = '')""")
        con.execute(f"CREATE TEMP TABLE norm AS {_NORMALISE_SQL[match]}")
        total, valid = con.execute("SELECT count(*), count(key) FROM norm").fetchone()
        if not total:
            raise ImportFileError("the file has no data rows (only blank lines or a header); "
                                  "nothing was imported", Location(path))
        if not valid:
            row_no, value, reason = con.execute(
                "SELECT n.row_no, i.value, n.reason FROM norm n JOIN input i USING (row_no) "
                "ORDER BY 1 LIMIT 1").fetchone()
            name = f"'{rows[0][col].strip()}'" if header and len(rows) and col < len(rows[0]) \
                else f"column {col + 1}"
            raise ImportFileError(
                f"no row of {name} is a valid {match.replace('_', ' ')}: all {total:,} rows "
                f"rejected, e.g. row {row_no} '{mask(value, match)}' ({reason}); pick the "
                "column with --column or the mode with --match. Nothing was imported",
                Location(path, row_no))
        con.execute("""CREATE TEMP TABLE keys AS
            SELECT min(row_no) AS row_no, key FROM norm WHERE key IS NOT NULL GROUP BY key""")
        keys = con.sql(f"SELECT row_no, {_KEY_OUT[match]} AS key FROM keys").to_arrow_table()
        rejected = []
        if valid < total:
            rejected = con.execute("SELECT n.row_no, i.value, n.reason FROM norm n JOIN input i "
                                   "USING (row_no) WHERE n.key IS NULL ORDER BY 1").fetchall()
        duplicates = []
        if keys.num_rows < valid:
            duplicates = con.execute("""
                SELECT n.row_no, i.value, k.row_no FROM norm n JOIN keys k USING (key)
                JOIN input i ON i.row_no = n.row_no WHERE n.row_no <> k.row_no ORDER BY 1
            """).fetchall()
    finally:
        con.close()
    issues = [RowIssue(r, "rejected", mask(v, match), reason or "invalid value")
              for r, v, reason in rejected]
    issues += [RowIssue(r, "duplicate", mask(v, match), f"same as row {first}")
               for r, v, first in duplicates]
    issues.sort(key=lambda i: i.row)
    return ParsedUpload(path=path, match=match, content_hash=digest, rows=int(total),
                        keys=keys, issues=issues, encoding=encoding, delimiter=delimiter,
                        header=header)
