"""`read_records`: the file formats service desks export, read row by row with the line each row started on."""

import sys

import pytest

from ticket_data.readers import MAX_FIELD_BYTES, read_records, sniff_delimiter


@pytest.mark.parametrize(
    "header, expected",
    [
        ("Number,Short description,Assignment group", ","),
        ("Number;Short description;Assignment group", ";"),
        ("Number\tShort description\tAssignment group", "\t"),
        ("Number|Short description|Assignment group", "|"),
        ('"Kurz; Beschreibung",Gruppe', ","),  # a delimiter inside a quoted name does not count
        ("Ticket;Beschreibung, lang;Gruppe", ";"),
        ("Document", ","),  # one column: nothing to sniff, the default
    ],
)
def test_sniff_delimiter_reads_the_header_line(header, expected):
    assert sniff_delimiter(header) == expected


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimited_exports_are_sniffed(tmp_path, delimiter):
    path = tmp_path / "export.csv"
    rows = [["Short description", "Description", "Assignment group"], ["VPN down", "since 9, no; idea", "Network"]]
    quoted = [[f'"{cell}"' if any(c in cell for c in ",;|\t") else cell for cell in row] for row in rows]
    path.write_text("\n".join(delimiter.join(row) for row in quoted) + "\n")
    records, lines, columns = read_records(path)
    assert columns == rows[0]
    assert records == [dict(zip(rows[0], rows[1]))]
    assert lines == [2]


def test_explicit_delimiter_wins_over_the_sniffed_one(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("a,b|c\n1,2|3\n")
    assert read_records(path)[2] == ["a", "b|c"]
    assert read_records(path, csv_delimiter="|")[2] == ["a,b", "c"]
    with pytest.raises(ValueError, match="csv_delimiter must be one character"):
        read_records(path, csv_delimiter=";;")


def test_tsv_and_utf16_unicode_text_exports(tmp_path):
    tsv = tmp_path / "export.tsv"
    tsv.write_text("subject\tcategory\nDrucker offline\tPrinting\n")
    assert read_records(tsv)[0] == [{"subject": "Drucker offline", "category": "Printing"}]
    utf16 = tmp_path / "unicode.txt"  # Excel's "Unicode text": UTF-16 with a BOM, tab-delimited
    utf16.write_bytes("subject\tcategory\nGrüße aus München\tEmail\n".encode("utf-16"))
    assert read_records(utf16)[0] == [{"subject": "Grüße aus München", "category": "Email"}]


def test_quoted_fields_with_newlines_keep_line_numbers(tmp_path):
    path = tmp_path / "multiline.csv"
    path.write_text('subject,description,category\na,"line one\nline two\r\nline three",x\n\nb,plain,y\n')
    records, lines, _ = read_records(path)
    assert records[0]["description"] == "line one\nline two\r\nline three"
    assert lines == [2, 6]  # the second row starts after the 3-line field and a blank line


def test_fields_beyond_the_csv_modules_default_limit(tmp_path):
    import csv

    path = tmp_path / "huge.csv"
    body = "word " * 100_000  # 500 kB, well past csv's 131,072-character default
    path.write_text(f'subject,description,category\nmail thread,"{body}",Email\n')
    records, _, _ = read_records(path)
    assert len(records[0]["description"]) == len(body)
    assert csv.field_size_limit() == 131072  # the module-wide limit is restored afterwards
    assert MAX_FIELD_BYTES < sys.maxsize  # bounded all the same


def test_xlsx_first_sheet_with_excel_row_numbers(tmp_path):
    openpyxl = pytest.importorskip("openpyxl", reason="the xlsx extra (openpyxl) is not installed")
    import datetime

    path = tmp_path / "servicenow.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Number", "Short description", "Description", "Assignment group", "Opened"])
    sheet.append([1001, "Printer jam", "Tray 2\r\nstill jammed", "Printing", datetime.datetime(2026, 1, 5, 9, 30)])
    sheet.append([None, None, None, None, None])  # an empty row is no row
    sheet.append([1002.0, "VPN", None, "Network", None])
    workbook.save(path)
    records, lines, columns = read_records(path)
    assert columns == ["Number", "Short description", "Description", "Assignment group", "Opened"]
    assert lines == [2, 4]
    assert records[0]["Number"] == "1001" and records[1]["Number"] == "1002"
    assert records[0]["Opened"] == "2026-01-05 09:30:00"
    assert records[1]["Description"] is None
    assert "still jammed" in records[0]["Description"]


def test_xlsx_without_openpyxl_says_what_to_install(tmp_path, monkeypatch):
    path = tmp_path / "export.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a workbook")
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # import fails as if the extra were not installed
    with pytest.raises(ValueError, match=r"export\.xlsx: reading \.xlsx needs openpyxl: pip install 'ticket-classifier\[xlsx\]'"):
        read_records(path)


def test_corrupt_xlsx_is_a_clear_error(tmp_path):
    pytest.importorskip("openpyxl", reason="the xlsx extra (openpyxl) is not installed")
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"this is a CSV renamed to .xlsx")
    with pytest.raises(ValueError, match=r"broken\.xlsx: unreadable Excel file"):
        read_records(path)
