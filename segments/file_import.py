"""File segments: import an uploaded CSV/XLSX of customer ids, phones or phone hashes.

Two steps, so that a file can be checked without the warehouse (the inbox sensor
does) and stored in one transaction when it is:

1. :func:`parse_upload` reads the bytes (size cap first), decodes UTF-8, UTF-8 with
   BOM or GBK/GB18030 itself, sniffs the delimiter (comma, semicolon, tab), reads
   every value as text, normalises it for the match mode (phones: ``+86``, spaces,
   dashes, full-width digits) and turns phones into SHA-256 hashes at once: the raw
   numbers live only in memory, never in a table, a log or a report. Each row is
   valid, a duplicate of an earlier row, or rejected with a reason.
2. :func:`store_import` matches the valid keys against ``raw.customers`` and replaces
   the segment's rows in ``segments.imported`` in one transaction, logging the import in
   ``segments.imports``. Importing the same content again changes nothing.

:func:`write_report` keeps the rows that were not imported (rejected, duplicate,
unmatched) in a CSV beside the upload, phones masked.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from kequn.errors import ImportFileError, Location
from kequn.warehouse import table_exists, transaction
from segments.model import MATCH_MODES

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
"""Default upload size cap (64 MiB); override with KEQUN_IMPORT_MAX_BYTES or --max-bytes."""
DELIMITERS = (",", ";", "\t")
HEADER_NAMES = {
    "id": ("customer_id", "id", "客户号", "客户id", "客户编号"),
    "phone": ("phone", "mobile", "phone_number", "手机", "手机号", "手机号码", "电话"),
    "phone_hash": ("phone_hash", "hash", "sha256", "手机号哈希"),
}
_FW_FROM, _FW_TO = "０１２３４５６７８９＋－（）　", "0123456789+-() "
_FULLWIDTH = str.maketrans(_FW_FROM, _FW_TO)
_FW_RE = re.compile(f"[{_FW_FROM}]+")


def max_bytes_default() -> int:
    """The configured size cap: KEQUN_IMPORT_MAX_BYTES or 64 MiB."""
    raw = os.environ.get("KEQUN_IMPORT_MAX_BYTES")
    return int(raw) if raw else DEFAULT_MAX_BYTES


@dataclass
class RowIssue:
    """A row that was not imported: its 1-based row number, a masked value and why."""

    row: int
    status: str  # rejected | duplicate | unmatched
    value: str
    reason: str


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


@dataclass
class ImportReport:
    """The outcome of an import: counts, the rows not imported and whether anything changed."""

    segment: str
    file_name: str
    match: str
    content_hash: str
    rows: int
    matched: int
    unmatched: int
    duplicate: int
    rejected: int
    changed: bool
    issues: list[RowIssue] = field(default_factory=list)
    report_path: Path | None = None

    def summary(self) -> str:
        """One line: rows, matched, unmatched, duplicate, rejected (and 'unchanged')."""
        state = "imported" if self.changed else "unchanged (same file already imported)"
        return (f"{self.file_name}: {self.rows} rows, {self.matched} matched, "
                f"{self.unmatched} unmatched, {self.duplicate} duplicate, "
                f"{self.rejected} rejected; {state}")


# -- reading ------------------------------------------------------------------------


def decode(data: bytes, path: Path) -> tuple[str, str]:
    """Text and encoding of ``data``: UTF-8 (with or without BOM), else GB18030 (GBK)."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"the file is neither UTF-8 nor GBK/GB18030 text (bad byte at "
                              f"offset {exc.start})", Location(path)) from None


def sniff_delimiter(text: str) -> str:
    """The delimiter (comma, semicolon or tab) used consistently in the first lines."""
    lines = [line for line in text[:65536].splitlines()[:50] if line.strip()]
    best, best_score = ",", 0
    for delim in DELIMITERS:
        counts = [len(next(csv.reader([line], delimiter=delim))) - 1 for line in lines]
        if not counts or max(counts) == 0:
            continue
        consistent = sum(1 for c in counts if c == counts[0] and c > 0)
        score = consistent * 1000 + sum(counts)
        if score > best_score:
            best, best_score = delim, score
    return best


def to_halfwidth(text: str) -> str:
    """Full-width digits, plus, minus, brackets and spaces replaced by their ASCII forms."""
    return _FW_RE.sub(lambda m: m.group(0).translate(_FULLWIDTH), text)


def _cell_text(value: object) -> str:
    """A spreadsheet cell as text: integral numbers without '.0', None as ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class _Lines:
    """A one-column file kept as its lines (no per-row lists); ``rows[i]`` is ``[line]``."""

    def __init__(self, lines: list[str]):
        self.lines = lines

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, index: int) -> list[str]:
        return [self.lines[index]]


Rows = list[list[str]] | _Lines


def read_rows(path: Path, data: bytes) -> tuple[Rows, str, str]:
    """Every row of a CSV or XLSX as text cells, with the encoding and delimiter used."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        import openpyxl

        try:
            book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many types for a broken workbook
            raise ImportFileError(f"cannot read the workbook: {exc}", Location(path)) from None
        sheet = book.worksheets[0]
        rows = [[to_halfwidth(_cell_text(v)) for v in row]
                for row in sheet.iter_rows(values_only=True)]
        book.close()
        return rows, "xlsx", ""
    if path.suffix.lower() not in (".csv", ".txt", ".tsv"):
        raise ImportFileError(f"unsupported file type '{path.suffix}' (use .csv or .xlsx)",
                              Location(path))
    text, encoding = decode(data, path)
    text = to_halfwidth(text)
    delimiter = sniff_delimiter(text)
    if '"' not in text:
        # no quoting: one record per line, split directly (fast for large lists)
        lines = text.splitlines()
        if delimiter not in text:
            return _Lines(lines), encoding, delimiter
        return [line.split(delimiter) for line in lines], encoding, delimiter
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise ImportFileError(f"cannot read the CSV: {exc}", Location(path)) from None
    return rows, encoding, delimiter


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


# -- normalising --------------------------------------------------------------------

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
                    WHEN NOT regexp_full_match(n, '[0-9a-f]{64}')
                      THEN 'a phone hash is 64 hexadecimal characters (SHA-256)'
               END AS reason,
               CASE WHEN regexp_full_match(n, '[0-9a-f]{64}') THEN n END AS key
        FROM p""",
}


_KEY_OUT = {
    # phones are deduplicated as numbers, then hashed once each (as stored in raw.customers)
    "phone": "sha256(CAST(key AS VARCHAR))",
    "id": "CAST(key AS VARCHAR)",
    "phone_hash": "key",
}


def mask(value: str, match: str) -> str:
    """A value safe to write in a report: phone-like digits masked, formulas neutralised.

    >>> mask("138-0013-8000", "phone")
    '138******00'
    """
    digits = sum(ch.isdigit() for ch in value)
    if match == "phone" or digits >= 7:
        kept = re.sub(r"\D", "", value.translate(_FULLWIDTH))
        value = kept[:3] + "*" * max(len(kept) - 5, 0) + kept[-2:] if len(kept) > 5 else (
            "*" * len(kept) if kept else value[:20])
    value = value[:40]
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def content_hash(data: bytes, match: str, column: str = "") -> str:
    """Identity of an upload: SHA-256 of its bytes with the match mode and column."""
    return hashlib.sha256(data + f"\0{match}\0{column}".encode()).hexdigest()


def parse_upload(path: Path, match: str, *, column: str = "",
                 max_bytes: int | None = None) -> ParsedUpload:
    """Read, decode and normalise an upload; raw phones exist only in memory here.

    Raises ImportFileError (naming the file) for a file over the size cap, an unknown
    encoding or file type, or a file without data rows. Row-level problems do not
    raise: they come back in ``issues`` with the row number and reason.
    """
    if match not in MATCH_MODES:
        raise ImportFileError(f"unknown match mode '{match}' (one of {', '.join(MATCH_MODES)})",
                              Location(path))
    cap = max_bytes if max_bytes is not None else max_bytes_default()
    size = path.stat().st_size
    if size > cap:
        raise ImportFileError(f"the file is {size:,} bytes, over the {cap:,}-byte import limit "
                              "(split it, or raise KEQUN_IMPORT_MAX_BYTES)", Location(path))
    data = path.read_bytes()
    digest = content_hash(data, match, column)
    rows, encoding, delimiter = read_rows(path, data)
    col, header = _choose_column(rows, match, column, path)
    start = 1 if header else 0
    if isinstance(rows, _Lines):
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
            raise ImportFileError("the file has no data rows", Location(path))
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


# -- storing ------------------------------------------------------------------------


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``segments.imported`` and ``segments.imports`` if missing."""
    con.execute("CREATE SCHEMA IF NOT EXISTS segments")
    con.execute("""CREATE TABLE IF NOT EXISTS segments.imported (
        segment VARCHAR NOT NULL, customer_id BIGINT NOT NULL, import_id VARCHAR NOT NULL,
        row_no BIGINT)""")  # unique per (segment, customer_id) by construction (GROUP BY)
    con.execute("""CREATE TABLE IF NOT EXISTS segments.imports (
        import_id VARCHAR PRIMARY KEY, segment VARCHAR NOT NULL, content_hash VARCHAR NOT NULL,
        file_name VARCHAR, match VARCHAR, rows BIGINT, matched BIGINT, unmatched BIGINT,
        duplicate BIGINT, rejected BIGINT, imported_at TIMESTAMP DEFAULT current_timestamp)""")


def latest_import(con: duckdb.DuckDBPyConnection, segment: str) -> tuple | None:
    """The latest import row of ``segment`` (content_hash, file_name, match, counts...)."""
    if not table_exists(con, "segments", "imports"):
        return None
    return con.execute("""SELECT content_hash, file_name, match, rows, matched, unmatched,
        duplicate, rejected FROM segments.imports WHERE segment = ?
        ORDER BY imported_at DESC, import_id DESC LIMIT 1""", [segment]).fetchone()


def was_imported(con: duckdb.DuckDBPyConnection, segment: str, content_hash: str) -> bool:
    """Whether this exact content was ever imported for ``segment``."""
    if not table_exists(con, "segments", "imports"):
        return False
    row = con.execute("SELECT count(*) FROM segments.imports WHERE segment = ? "
                      "AND content_hash = ?", [segment, content_hash]).fetchone()
    return bool(row and row[0])


def store_import(con: duckdb.DuckDBPyConnection, segment: str,
                 parsed: ParsedUpload) -> ImportReport:
    """Match the upload's keys and make them the segment's imported members (one transaction).

    If the segment's latest import has the same content hash, nothing is written and
    the report says ``changed=False``. Unmatched keys are reported with their rows.
    """
    if not table_exists(con, "raw", "customers"):
        raise ImportFileError("raw.customers does not exist: generate or load the warehouse "
                              "first", Location(parsed.path))
    ensure_tables(con)
    con.execute("SET enable_progress_bar = false")
    latest = latest_import(con, segment)
    if latest and latest[0] == parsed.content_hash:
        return ImportReport(segment, parsed.path.name, parsed.match, parsed.content_hash,
                            rows=int(latest[3]), matched=int(latest[4]),
                            unmatched=int(latest[5]), duplicate=int(latest[6]),
                            rejected=int(latest[7]), changed=False, issues=parsed.issues)
    import_id = uuid.uuid4().hex
    key_expr = "CAST(k.key AS BIGINT) = c.customer_id" if parsed.match == "id" \
        else "k.key = c.phone_hash"
    con.execute("SELECT 1").fetchall()  # settle any half-read result before register()
    con.register("upload_keys", parsed.keys)
    try:
        with transaction(con):
            con.execute(f"""CREATE OR REPLACE TEMP TABLE upload_matches AS
                SELECT k.row_no, c.customer_id FROM upload_keys k
                LEFT JOIN raw.customers c ON {key_expr}""")
            con.execute("DELETE FROM segments.imported WHERE segment = ?", [segment])
            # keys are distinct and a customer has one id and one phone hash, so each
            # customer appears at most once: no regrouping needed
            con.execute("""INSERT INTO segments.imported
                SELECT ?, customer_id, ?, row_no FROM upload_matches
                WHERE customer_id IS NOT NULL""", [segment, import_id])
            unmatched_rows = [r for (r,) in con.execute(
                "SELECT row_no FROM upload_matches WHERE customer_id IS NULL ORDER BY row_no"
            ).fetchall()]
            matched = con.execute("SELECT count(DISTINCT row_no) FROM upload_matches "
                                  "WHERE customer_id IS NOT NULL").fetchone()[0]
            con.execute("INSERT INTO segments.imports (import_id, segment, content_hash, "
                        "file_name, match, rows, matched, unmatched, duplicate, rejected) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [import_id, segment, parsed.content_hash, parsed.path.name,
                         parsed.match, parsed.rows, matched, len(unmatched_rows),
                         parsed.duplicate, parsed.rejected])
            con.execute("DROP TABLE upload_matches")
    finally:
        con.unregister("upload_keys")
    issues = parsed.issues + [RowIssue(r, "unmatched", "", "no customer with this "
                                       + ("id" if parsed.match == "id" else "phone"))
                              for r in unmatched_rows]
    issues.sort(key=lambda i: i.row)
    return ImportReport(segment, parsed.path.name, parsed.match, parsed.content_hash,
                        rows=parsed.rows, matched=int(matched), unmatched=len(unmatched_rows),
                        duplicate=parsed.duplicate, rejected=parsed.rejected, changed=True,
                        issues=issues)


def report_path_for(path: Path) -> Path:
    """Where the rows-not-imported report of ``path`` goes: ``<name>.rejected.csv`` beside it."""
    return path.with_name(path.name + ".rejected.csv")


def write_report(path: Path, issues: list[RowIssue]) -> Path:
    """Write ``row,status,value,reason`` (values masked) atomically to ``path``."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "status", "value", "reason"])
        for issue in issues:
            writer.writerow([issue.row, issue.status, issue.value, issue.reason])
    os.replace(tmp, path)
    return path


def import_file(con: duckdb.DuckDBPyConnection, segment: str, path: Path, match: str, *,
                column: str = "", max_bytes: int | None = None,
                report_dir: Path | None = None) -> ImportReport:
    """Parse, match and store ``path`` for ``segment``; write the report of rows not imported.

    The report goes beside the file (or into ``report_dir``) when any row was not
    imported; it never contains a raw phone number.
    """
    cap = max_bytes if max_bytes is not None else max_bytes_default()
    if path.stat().st_size <= cap:
        ensure_tables(con)
        latest = latest_import(con, segment)
        if latest and latest[0] == content_hash(path.read_bytes(), match, column):
            return ImportReport(segment, path.name, match, latest[0], rows=int(latest[3]),
                                matched=int(latest[4]), unmatched=int(latest[5]),
                                duplicate=int(latest[6]), rejected=int(latest[7]),
                                changed=False)
    parsed = parse_upload(path, match, column=column, max_bytes=max_bytes)
    report = store_import(con, segment, parsed)
    if report.issues:
        target = report_path_for(path)
        if report_dir is not None:
            target = report_dir / target.name
        report.report_path = write_report(target, report.issues)
    return report
