"""File segments: import an uploaded CSV/XLSX of customer ids, phones or phone hashes.

Three steps, each its own module, so that a file can be checked without the warehouse
(the inbox sensor does) and stored in one transaction when it is:

1. :mod:`segments.imports.decode` reads the bytes into rows of text cells;
2. :mod:`segments.imports.normalise` picks the column and turns values into match keys
   (phones hashed at once), reporting every row that is not one (:func:`parse_upload`);
3. :mod:`segments.imports.store` matches the keys and replaces the segment's imported
   members (:func:`store_import`).

:mod:`segments.imports.report` keeps the rows that were not imported (phones masked).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from segments.imports.decode import read_upload
from segments.imports.normalise import (
    DEFAULT_MAX_BYTES,
    ParsedUpload,
    content_hash,
    parse_upload,
)
from segments.imports.report import ImportReport, RowIssue, report_path_for, write_report
from segments.imports.store import latest_import, store_import, was_imported

__all__ = ["ImportReport", "ParsedUpload", "RowIssue", "content_hash", "import_file",
           "parse_upload", "store_import", "was_imported"]


def import_file(con: duckdb.DuckDBPyConnection, segment: str, path: Path, match: str, *,
                column: str = "", max_bytes: int = DEFAULT_MAX_BYTES,
                report_dir: Path | None = None) -> ImportReport:
    """Parse, match and store ``path`` for ``segment``; write the report of rows not imported.

    The report goes beside the file (or into ``report_dir``) when any row was not
    imported; it never contains a raw phone number.
    """
    data = read_upload(path, max_bytes)
    latest = latest_import(con, segment)
    if latest and latest[0] == content_hash(data, match, column):
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
