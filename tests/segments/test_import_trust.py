"""Uploads that try to leak, wipe or exhaust: refused with one clear message, nothing replaced."""

from __future__ import annotations

import csv
import io
import os
import zipfile
from pathlib import Path

import duckdb
import openpyxl
import pytest

from kequn.errors import ImportFileError
from segments.imports import import_file, parse_upload
from segments.imports.report import mask
from tests.segments.conftest import phone_of


def imported(con: duckdb.DuckDBPyConnection, segment: str) -> list[int]:
    return [r[0] for r in con.execute("SELECT customer_id FROM segments.imported WHERE "
                                      "segment = ? ORDER BY 1", [segment]).fetchall()]


@pytest.fixture
def seeded(wide: Path, tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """The hand-made warehouse with segment 'seg' holding customers 1 and 2 (by phone)."""
    good = tmp_path / "good.csv"
    good.write_text(f"phone\n{phone_of(1)}\n{phone_of(2)}\n", encoding="utf-8")
    con = duckdb.connect(str(wide))
    import_file(con, "seg", good, "phone")
    assert imported(con, "seg") == [1, 2]
    return con


@pytest.mark.parametrize(("body", "message"), [
    ("phone\nhello\nworld\n", r"no row of 'phone' is a valid phone: all 2 rows rejected, e\.g\. "
     r"row 2 'hello' \(not a phone number"),
    ("\n\n   \n\n", "no data rows"),
    ("phone\n13999999990\n13999999991\n", "nothing matched: none of the 2 rows is a known "
     "customer phone"),
])
def test_an_upload_that_matches_nothing_replaces_nothing(seeded, tmp_path: Path, body: str,
                                                        message: str) -> None:
    upload = tmp_path / "bad.csv"
    upload.write_text(body, encoding="utf-8")
    with pytest.raises(ImportFileError, match=message):
        import_file(seeded, "seg", upload, "phone")
    assert imported(seeded, "seg") == [1, 2]


def test_a_wrong_column_guess_names_the_column_and_a_sample(tmp_path: Path) -> None:
    upload = tmp_path / "two.csv"
    upload.write_text("name,mobile_no\nZhang San,13800000001\nLi Si,13800000002\n",
                      encoding="utf-8")
    with pytest.raises(ImportFileError) as info:
        parse_upload(upload, "phone")
    assert info.value.headline() == (
        f"{upload}:2: no row of 'name' is a valid phone: all 2 rows rejected, e.g. row 2 "
        "'Zhang San' (not a phone number (letters or symbols)); pick the column with --column "
        "or the mode with --match. Nothing was imported")


def test_symbolic_links_and_devices_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n13800000001\n", encoding="utf-8")
    link = tmp_path / "list.csv"
    link.symlink_to(secret)
    with pytest.raises(ImportFileError, match="symbolic link"):
        parse_upload(link, "id")
    zero = tmp_path / "zero.csv"
    zero.symlink_to("/dev/zero")
    with pytest.raises(ImportFileError, match="symbolic link"):
        parse_upload(zero, "id", max_bytes=1000)
    with pytest.raises(ImportFileError, match="not a regular file"):
        parse_upload(Path("/dev/zero"), "id", max_bytes=1000)
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(ImportFileError, match="not a regular file"):
        parse_upload(fifo, "id", max_bytes=1000)


def test_a_zip_bomb_workbook_is_refused_before_it_is_read(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/worksheets/sheet1.xml", b"<" + b"a" * (50 << 20) + b">")
    assert bomb.stat().st_size < 200_000
    with pytest.raises(ImportFileError, match=r"expands to 52,428,8.. bytes, over the "
                                              r"1,000,000-byte limit"):
        parse_upload(bomb, "phone", max_bytes=100_000)
    with pytest.raises(ImportFileError, match=r"compressed .* to 1 .*zip bomb"):
        parse_upload(bomb, "phone", max_bytes=10_000_000)


@pytest.mark.parametrize("value", ["=1+1", "\t=cmd|' /C calc'!A0", "\r=HYPERLINK(\"x\")",
                                   " @SUM(A1)", "\n+1", "  -2+3"])
def test_formulas_are_neutralised_in_reports(value: str) -> None:
    shown = mask(value, "id")
    assert shown.startswith("'")


def test_formula_cells_without_saved_values_are_reported(wide: Path, tmp_path: Path) -> None:
    path = tmp_path / "one.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    for value in ["phone", phone_of(1), "=A2", phone_of(3), "=CONCAT(\"138\",\"00000004\")"]:
        sheet.append([value])
    book.save(path)  # openpyxl saves formulas without cached values
    parsed = parse_upload(path, "phone")
    assert parsed.rows == 4
    rejected = [(i.row, i.reason) for i in parsed.issues if i.status == "rejected"]
    assert [r for r, _ in rejected] == [3, 5]
    assert all("formula without a saved value" in reason for _, reason in rejected)


@pytest.mark.parametrize("separator", ["\u2028", "\u0085", "\r", "\x0b", "\x1c"])
@pytest.mark.parametrize("quoted", [False, True])
def test_line_separators_inside_values_keep_row_numbers(tmp_path: Path, separator: str,
                                                        quoted: bool) -> None:
    values = [phone_of(1), f"138{separator}00000002", phone_of(3), "oops"]
    if quoted:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([["phone", "note"]] + [
            [v, "a \"quoted\" note"] for v in values])
        text = buffer.getvalue()
    else:
        text = "phone\n" + "\n".join(values) + "\n"
    path = tmp_path / "sep.csv"
    path.write_bytes(text.encode("utf-8"))
    parsed = parse_upload(path, "phone")
    assert parsed.rows == 4
    rejected = {i.row: i.reason for i in parsed.issues if i.status == "rejected"}
    assert 5 in rejected and set(rejected) <= {3, 5}  # 'oops' is still row 5
    if separator not in " \r\x0b":  # not whitespace to the phone normaliser
        assert 3 in rejected
