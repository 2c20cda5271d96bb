"""Storing an upload's keys: match them against ``raw.customers`` and make them the file
segment's members in ``segments.imported``, logging the import in ``segments.imports``.

One transaction per import: readers see the old list or the new one. Importing the same
content again changes nothing.
"""

from __future__ import annotations

import uuid

import duckdb

from kequn.errors import ImportFileError, Location
from segments.imports.normalise import ParsedUpload
from segments.imports.report import ImportReport, RowIssue
from warehouse.db import table_exists, transaction


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
    the report says ``changed=False``. Unmatched keys are reported with their rows. An
    upload where no key matches a customer never wipes a non-empty list: it is refused
    (ImportFileError) and the current list stays as it was.
    """
    if not table_exists(con, "raw", "customers"):
        raise ImportFileError("raw.customers does not exist: generate or load the warehouse "
                              "first", Location(parsed.path))
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
            current = con.execute("SELECT count(*) FROM segments.imported WHERE segment = ?",
                                  [segment]).fetchone()[0]
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
            if not matched and current:
                raise ImportFileError(
                    f"nothing matched: none of the {parsed.rows:,} rows is a known customer "
                    f"{'id' if parsed.match == 'id' else 'phone'} (e.g. row "
                    f"{unmatched_rows[0] if unmatched_rows else '?'}); the segment keeps its "
                    f"current list of {current:,}", Location(parsed.path))
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
