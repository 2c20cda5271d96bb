"""What an import reports: counts, and the rows that were not imported with why.

The report of rows not imported is a CSV (``row,status,value,reason``) beside the upload
(or in a reports folder); its values are masked (phones never appear whole) and cells a
spreadsheet would run as formulas are neutralised. Written atomically.
"""

from __future__ import annotations

import csv
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from segments.imports.decode import FULLWIDTH


@dataclass
class RowIssue:
    """A row that was not imported: its 1-based row number, a masked value and why."""

    row: int
    status: str  # rejected | duplicate | unmatched
    value: str
    reason: str


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


def mask(value: str, match: str) -> str:
    """A value safe to write in a report: phone-like digits masked, formulas neutralised.

    >>> mask("138-0013-8000", "phone")
    '138******00'
    """
    digits = sum(ch.isdigit() for ch in value)
    if match == "phone" or digits >= 7:
        kept = re.sub(r"\D", "", value.translate(FULLWIDTH))
        value = kept[:3] + "*" * max(len(kept) - 5, 0) + kept[-2:] if len(kept) > 5 else (
            "*" * len(kept) if kept else value[:20])
    value = value.replace("\ue000", "")[:40]
    return "'" + value if is_formula_like(value) else value


def is_formula_like(value: str) -> bool:
    """Whether a spreadsheet would run ``value`` as a formula: it starts with ``=``, ``+``,
    ``-`` or ``@``, possibly after blanks, tabs or line breaks (or starts with tab/CR).

    >>> [is_formula_like(v) for v in ("=1+1", " -2", "  @x", "138")]
    [True, True, True, False]
    """
    return value[:1] in ("\t", "\r") or value.lstrip(" \t\r\n\u3000")[:1] in ("=", "+", "-", "@")


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
