"""Reading an uploaded file into rows of text cells: CSV (any common encoding and
delimiter) or XLSX.

Encodings: UTF-8, UTF-8 with BOM, else GBK/GB18030 (decoded here: Polars and DuckDB would
fail on GBK). Delimiters: comma, semicolon or tab, sniffed from the first lines. Every
cell stays text (``00123`` keeps its zeros), full-width digits and signs become ASCII.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import zipfile
from pathlib import Path

from kequn.errors import ImportFileError, Location

DELIMITERS = (",", ";", "\t")
_FW_FROM, _FW_TO = "０１２３４５６７８９＋－（）　", "0123456789+-() "
FULLWIDTH = str.maketrans(_FW_FROM, _FW_TO)
_FW_RE = re.compile(f"[{_FW_FROM}]+")


FORMULA_MARK = "\ue000"
"""Marks a workbook formula cell saved without its value (its text is the formula)."""
MAX_UNZIP_FACTOR = 10
"""An .xlsx may expand to at most this many times the import size cap."""
MAX_UNZIP_RATIO = 200
"""Largest compression ratio of one workbook member above 1 MiB (a zip bomb is 1000+)."""


def read_upload(path: Path, max_bytes: int) -> bytes:
    """The bytes of an uploaded file, read safely: never through a symbolic link, only a
    regular file, never more than ``max_bytes`` (checked on the opened file, so a link
    swapped in after a check or a device such as /dev/zero cannot slip through)."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise ImportFileError(f"cannot read the file: {exc.strerror}", Location(path)) from None
    if stat.S_ISLNK(info.st_mode):
        raise ImportFileError("the upload is a symbolic link; give the file itself",
                              Location(path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise ImportFileError(f"cannot read the file: {exc.strerror}", Location(path)) from None
    with os.fdopen(fd, "rb") as handle:
        opened = os.fstat(handle.fileno())
        if not stat.S_ISREG(opened.st_mode):
            raise ImportFileError("the upload is not a regular file (a device, pipe or "
                                  "folder cannot be imported)", Location(path))
        if opened.st_size > max_bytes:
            raise ImportFileError(f"the file is {opened.st_size:,} bytes, over the "
                                  f"{max_bytes:,}-byte import limit (split it, or raise "
                                  "KEQUN_IMPORT_MAX_BYTES)", Location(path))
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImportFileError(f"the file grew past the {max_bytes:,}-byte import limit while "
                              "it was read", Location(path))
    return data


def check_workbook_size(data: bytes, path: Path, max_bytes: int) -> None:
    """Refuse a workbook whose members would expand past the cap (a zip bomb), before
    anything is decompressed."""
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise ImportFileError(f"cannot read the workbook: {exc}", Location(path)) from None
    total = sum(m.file_size for m in members)
    limit = max_bytes * MAX_UNZIP_FACTOR
    if total > limit:
        raise ImportFileError(f"the workbook expands to {total:,} bytes, over the {limit:,}-"
                              f"byte limit ({MAX_UNZIP_FACTOR} x the import limit)",
                              Location(path))
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > 1 << 20 and ratio > MAX_UNZIP_RATIO:
            raise ImportFileError(f"the workbook member '{member.filename}' is compressed "
                                  f"{ratio:,.0f} to 1 (more than {MAX_UNZIP_RATIO}: a zip "
                                  "bomb?); save it again or export a CSV", Location(path))


def split_lines(text: str) -> list[str]:
    """Records of an unquoted CSV: split at ``\n`` (and ``\r\n``) only, so separators such
    as U+2028, U+0085 or a lone ``\r`` inside a value never shift row numbers."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


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


def _sheet_rows(data: bytes, path: Path, *, values: bool) -> list[tuple]:
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=values)
        try:
            return list(book.worksheets[0].iter_rows(values_only=True))
        finally:
            book.close()
    except Exception as exc:  # openpyxl raises many types for a broken workbook
        raise ImportFileError(f"cannot read the workbook: {exc}", Location(path)) from None


def read_rows(path: Path, data: bytes,
              max_bytes: int | None = None) -> tuple[Rows, str, str]:
    """Every row of a CSV or XLSX as text cells, with the encoding and delimiter used.

    A workbook is checked against ``max_bytes`` (expanded size and ratio) before it is
    read. A formula cell saved without its value reads as its formula text (``=A1*2``),
    marked with :data:`FORMULA_MARK`, so that it is reported as a rejected row instead
    of vanishing as a blank one.
    """
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        check_workbook_size(data, path, max_bytes if max_bytes is not None else len(data))
        cells = _sheet_rows(data, path, values=True)
        if any(v is None for row in cells for v in row):
            formulas = _sheet_rows(data, path, values=False)
            cells = [tuple(FORMULA_MARK + f if v is None and isinstance(f, str)
                           and f.startswith("=") else v
                           for v, f in zip(row, frow, strict=False))
                     for row, frow in zip(cells, formulas, strict=False)]
        rows = [[to_halfwidth(_cell_text(v)) for v in row] for row in cells]
        return rows, "xlsx", ""
    if path.suffix.lower() not in (".csv", ".txt", ".tsv"):
        raise ImportFileError(f"unsupported file type '{path.suffix}' (use .csv or .xlsx)",
                              Location(path))
    text, encoding = decode(data, path)
    text = to_halfwidth(text)
    delimiter = sniff_delimiter(text)
    if '"' not in text:
        # no quoting: one record per line, split directly (fast for large lists)
        lines = split_lines(text)
        if delimiter not in text:
            return Lines(lines), encoding, delimiter
        return [line.split(delimiter) for line in lines], encoding, delimiter
    try:
        # records end at \n only: a lone \r or U+2028 stays inside its value
        rows = list(csv.reader(io.StringIO(re.sub(r"\r(?!\n)", "\ufffd", text), newline="\n"),
                               delimiter=delimiter))
    except csv.Error as exc:
        raise ImportFileError(f"cannot read the CSV: {exc}", Location(path)) from None
    return rows, encoding, delimiter
