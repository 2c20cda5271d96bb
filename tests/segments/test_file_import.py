"""The importer: encodings, delimiters, id formats, garbage rows, reports, caps, idempotency."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import openpyxl
import pytest

from kequn.errors import ImportFileError
from segments.imports import import_file, parse_upload, report_path_for
from tests.segments.conftest import phone_of

FW = str.maketrans("0123456789", "０１２３４５６７８９")


def imported(con: duckdb.DuckDBPyConnection, segment: str) -> list[int]:
    return [r[0] for r in con.execute("SELECT customer_id FROM segments.imported WHERE "
                                      "segment = ? ORDER BY 1", [segment]).fetchall()]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_encodings_and_delimiters(wide: Path, tmp_path: Path, encoding: str,
                                  delimiter: str) -> None:
    rows = [["姓名", "手机号码", "备注"]] + [[f"客户{i}", phone_of(i), "备注；测试"]
                                          for i in (1, 2, 3)]
    path = tmp_path / "list.csv"
    path.write_bytes("\n".join(delimiter.join(r) for r in rows).encode(encoding))
    con = duckdb.connect(str(wide))
    report = import_file(con, "seg", path, "phone")
    assert (report.rows, report.matched, report.rejected) == (3, 3, 0)
    assert imported(con, "seg") == [1, 2, 3]


def test_phone_formats_are_normalised(wide: Path, tmp_path: Path) -> None:
    values = [f"+86 {phone_of(1)}", f"0086-{phone_of(2)}", f"{phone_of(3)[:3]}-"
              f"{phone_of(3)[3:7]}-{phone_of(3)[7:]}", phone_of(4).translate(FW),
              f"86{phone_of(5)}", f" {phone_of(6)} ", f"(+86) {phone_of(7)}"]
    path = tmp_path / "p.csv"
    path.write_text("phone\n" + "\n".join(values) + "\n", encoding="utf-8")
    con = duckdb.connect(str(wide))
    report = import_file(con, "seg", path, "phone")
    assert report.rejected == 0 and imported(con, "seg") == [1, 2, 3, 4, 5, 6, 7]


def test_garbage_rows_are_rejected_row_by_row_with_reasons(wide: Path, tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_text("\n".join([
        "phone",            # 1 header
        phone_of(1),        # 2 ok
        "hello",            # 3 letters
        "138001",           # 4 too short
        "",                 # 5 blank line: skipped, keeps numbering
        "1.38001E+10",      # 6 scientific notation
        "23800000001",      # 7 not a mobile prefix
        phone_of(1),        # 8 duplicate of row 2
        "13999999999",      # 9 valid but no such customer
        "=HYPERLINK(1)",    # 10 formula
    ]) + "\n", encoding="utf-8")
    con = duckdb.connect(str(wide))
    report = import_file(con, "seg", path, "phone")
    assert (report.rows, report.matched, report.unmatched, report.duplicate, report.rejected) \
        == (8, 1, 1, 1, 5)
    got = [(i.row, i.status, i.reason) for i in report.issues]
    assert got == [
        (3, "rejected", "not a phone number (letters or symbols)"),
        (4, "rejected", "a mobile number has 11 digits, found 6"),
        (6, "rejected", "scientific notation has lost digits; format the column as text"),
        (7, "rejected", "not a mainland mobile number (13x-19x)"),
        (8, "duplicate", "same as row 2"),
        (9, "unmatched", "no customer with this phone"),
        (10, "rejected", "not a phone number (letters or symbols)"),
    ]
    assert report.report_path == report_path_for(path)
    text = report.report_path.read_text(encoding="utf-8")
    assert phone_of(1) not in text and "13999999999" not in text
    rows = list(csv.reader(text.splitlines()))
    assert rows[0] == ["row", "status", "value", "reason"]
    assert ["8", "duplicate", "138******01", "same as row 2"] in rows
    assert all(not r[2].startswith("=") for r in rows[1:])


def test_ids_keep_text_semantics(wide: Path, tmp_path: Path) -> None:
    path = tmp_path / "ids.csv"
    path.write_text("customer_id;note\n0001;a\n2;b\n 3 ;c\n１２;d\n4.0;e\n99999999999999999999;f\n"
                    "1e3;g\n", encoding="utf-8")
    con = duckdb.connect(str(wide))
    report = import_file(con, "ids", path, "id")
    assert imported(con, "ids") == [1, 2, 3, 12]
    assert [(i.row, i.reason) for i in report.issues] == [
        (6, "a customer id has digits only"),
        (7, "customer id too long"),
        (8, "scientific notation has lost digits; format the column as text"),
    ]


def test_phone_hashes_match_case_insensitively(wide: Path, tmp_path: Path) -> None:
    import hashlib

    hashes = [hashlib.sha256(phone_of(i).encode()).hexdigest() for i in (4, 5)]
    path = tmp_path / "h.csv"
    path.write_text("phone_hash\n" + hashes[0].upper() + "\n" + hashes[1] + "\nnot-a-hash\n",
                    encoding="utf-8")
    con = duckdb.connect(str(wide))
    report = import_file(con, "h", path, "phone_hash")
    assert imported(con, "h") == [4, 5] and report.rejected == 1


def test_xlsx_numbers_and_text(wide: Path, tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["名字", "手机"])
    sheet.append(["a", int(phone_of(1))])          # phone stored as a number
    sheet.append(["b", float(phone_of(2))])        # as a float
    sheet.append(["c", "+86 " + phone_of(3)])      # as text
    sheet.append(["d", None])                      # empty cell
    path = tmp_path / "list.xlsx"
    book.save(path)
    con = duckdb.connect(str(wide))
    report = import_file(con, "x", path, "phone")
    assert imported(con, "x") == [1, 2, 3]
    assert [(i.row, i.reason) for i in report.issues] == [(5, "empty value")]


def test_reimporting_the_same_file_changes_nothing(wide: Path, tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("\n".join(phone_of(i) for i in (1, 2)) + "\n", encoding="utf-8")
    con = duckdb.connect(str(wide))
    first = import_file(con, "seg", path, "phone")
    before = con.execute("SELECT * FROM segments.imported ORDER BY customer_id").fetchall()
    again = import_file(con, "seg", path, "phone")
    assert first.changed and not again.changed
    assert con.execute("SELECT * FROM segments.imported ORDER BY customer_id").fetchall() \
        == before
    assert con.execute("SELECT count(*) FROM segments.imports").fetchone()[0] == 1
    path.write_text(phone_of(3) + "\n", encoding="utf-8")
    assert import_file(con, "seg", path, "phone").changed
    assert imported(con, "seg") == [3]


def test_size_cap_and_unreadable_files(tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    big.write_text("1\n" * 100, encoding="utf-8")
    with pytest.raises(ImportFileError, match=r"big.csv: the file is 200 bytes, over the "
                                              r"100-byte import limit"):
        parse_upload(big, "id", max_bytes=100)
    latin = tmp_path / "bad.csv"
    latin.write_bytes(b"\x81\x20\xff\xfe\n")
    with pytest.raises(ImportFileError, match="neither UTF-8 nor GBK/GB18030"):
        parse_upload(latin, "id")
    empty = tmp_path / "empty.csv"
    empty.write_text("phone\n\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="no data rows"):
        parse_upload(empty, "phone")
    pdf = tmp_path / "x.pdf"
    pdf.write_text("1", encoding="utf-8")
    with pytest.raises(ImportFileError, match=r"unsupported file type '\.pdf'"):
        parse_upload(pdf, "id")


def test_failed_store_keeps_the_previous_import(wide: Path, tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(phone_of(1) + "\n", encoding="utf-8")
    con = duckdb.connect(str(wide))
    import_file(con, "seg", path, "phone")
    con.execute("ALTER TABLE segments.imports ADD COLUMN must_fill INTEGER NOT NULL DEFAULT 0")
    con.execute("ALTER TABLE segments.imports ALTER COLUMN must_fill DROP DEFAULT")
    path.write_text(phone_of(2) + "\n", encoding="utf-8")
    with pytest.raises(duckdb.Error):
        import_file(con, "seg", path, "phone")
    assert imported(con, "seg") == [1]
