"""Reading an uploaded file into rows of text cells: CSV (any common encoding and
delimiter) or XLSX.

Encodings: UTF-8, UTF-8 with BOM, else GBK/GB18030 (decoded here: Polars and DuckDB would
fail on GBK). Delimiters: comma, semicolon or tab, sniffed from the first lines. Every
cell stays text (``00123`` keeps its zeros), full-width digits and signs become ASCII.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from kequn.errors import ImportFileError, Location

DELIMITERS = (",", ";", "\t")
_FW_FROM, _FW_TO = "０１２３４５６７８９＋－（）　", "0123456789+-() "
FULLWIDTH = str.maketrans(_FW_FROM, _FW_TO)
_FW_RE = re.compile(f"[{_FW_FROM}]+")


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
    return _FW_RE.sub(lambda m: m.group(0).translate(FULLWIDTH), text)


def _cell_text(value: object) -> str:
    """A spreadsheet cell as text: integral numbers without '.0', None as ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Lines:
    """A one-column file kept as its lines (no per-row lists); ``rows[i]`` is ``[line]``."""

    def __init__(self, lines: list[str]):
        self.lines = lines

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, index: int) -> list[str]:
        return [self.lines[index]]


Rows = list[list[str]] | Lines


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
            return Lines(lines), encoding, delimiter
        return [line.split(delimiter) for line in lines], encoding, delimiter
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise ImportFileError(f"cannot read the CSV: {exc}", Location(path)) from None
    return rows, encoding, delimiter
