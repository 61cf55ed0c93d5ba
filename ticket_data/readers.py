"""Reading ticket exports as they come out of service-desk tools: rows of strings, with where each row started.

CSV (comma, semicolon, tab or pipe delimited: sniffed from the header line, or given), UTF-8 with or without a
BOM and UTF-16 with a BOM (Excel's "Unicode text"), quoted fields with embedded newlines and fields far beyond the
csv module's default 128 KiB; JSON Lines; Parquet; Excel .xlsx (the `xlsx` extra: openpyxl). Every problem is a
`ValueError` that names the file and the line.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import json
from pathlib import Path

FORMATS = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".jsonl": "jsonl", ".json": "jsonl",
    ".parquet": "parquet", ".pq": "parquet",
    ".xlsx": "xlsx", ".xlsm": "xlsx",
}
CSV_DELIMITERS = (",", ";", "\t", "|")
# One field may hold a whole e-mail thread; the csv module refuses fields over 128 KiB by default. This bound
# keeps a malformed file (an unclosed quote swallowing the rest) from growing one field without limit.
MAX_FIELD_BYTES = 32 * 1024 * 1024
EXTRA_FIELDS = ("error", "drop")


def read_records(path: str | Path, csv_delimiter: str | None = None, extra_fields: str = "error"
                 ) -> tuple[list[dict], list[int], list[str]]:
    """Rows as dicts of values, the file line (or spreadsheet row) each started on, and the column names.

    Blank lines are not rows. ``csv_delimiter`` overrides the sniffed one for CSV files. A CSV row with more fields
    than the header (an unquoted delimiter in a text shifts every column after it) is an error naming its line
    (``extra_fields="error"``), unless ``extra_fields="drop"`` keeps the row without the extra fields.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: file not found")
    if not path.is_file():
        raise ValueError(f"{path}: not a file")
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r}; expected one of {sorted(FORMATS)}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the file is empty")
    if extra_fields not in EXTRA_FIELDS:
        raise ValueError(f"extra_fields must be one of {EXTRA_FIELDS}, got {extra_fields!r}")
    if csv_delimiter is not None and len(csv_delimiter) != 1:
        raise ValueError(f"csv_delimiter must be one character, got {csv_delimiter!r}")
    try:
        if kind == "csv":
            records, lines, columns = _read_csv(path, csv_delimiter, extra_fields)
        elif kind == "jsonl":
            records, lines, columns = _read_jsonl(path)
        elif kind == "xlsx":
            records, lines, columns = _read_xlsx(path)
        else:
            records, lines, columns = _read_parquet(path)
    except UnicodeError as error:
        where = f" at byte {error.start}" if isinstance(error, UnicodeDecodeError) else ""
        reason = getattr(error, "reason", str(error))
        raise ValueError(f"{path}: undecodable bytes{where} ({reason}); save the file as UTF-8") from None
    if not records:
        raise ValueError(f"{path}: the file has no rows")
    return records, lines, columns


def _encoding(path: Path) -> str:
    with path.open("rb") as handle:
        start = handle.read(4)
    if start.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"  # Excel's "Unicode text" export: UTF-16 with a BOM, tab-delimited
    return "utf-8-sig"  # -sig: exports from Excel start with a BOM


def sniff_delimiter(header_line: str, default: str = ",") -> str:
    """The candidate delimiter that occurs most often in the header line (outside quotes); ``default`` on a tie
    at zero (a single column). The header is one physical line in every export we know, unlike the data rows,
    whose quoted fields hold commas, semicolons and newlines."""
    unquoted = "".join(part for i, part in enumerate(header_line.split('"')) if i % 2 == 0)
    counts = {delimiter: unquoted.count(delimiter) for delimiter in CSV_DELIMITERS}
    best = max(counts, key=lambda d: (counts[d], d == default))
    return best if counts[best] else default


@contextlib.contextmanager
def _field_size_limit(limit: int):
    previous = csv.field_size_limit()
    csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _read_csv(path: Path, delimiter: str | None, extra_fields: str = "error"):
    encoding = _encoding(path)
    with path.open(newline="", encoding=encoding) as handle, _field_size_limit(MAX_FIELD_BYTES):
        if delimiter is None:
            first_line = handle.readline()
            handle.seek(0)
            delimiter = sniff_delimiter(first_line, "\t" if path.suffix.lower() == ".tsv" else ",")
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path}: the file is empty") from None
        except csv.Error as error:
            raise ValueError(f"{path}: unreadable CSV header: {error}") from None
        header = [name.strip() for name in header]
        _check_header(path, header)
        records, lines = [], []
        start = reader.line_num + 1
        try:
            for row in reader:
                if not row:  # a blank line
                    start = reader.line_num + 1
                    continue
                if len(row) > len(header) and extra_fields == "error" and any(v.strip() for v in row[len(header):]):
                    raise ValueError(
                        f"{path}: line {start} has {len(row)} fields, the header {len(header)} (an unquoted "
                        f"{delimiter!r} inside a text?); quote that field, or pass extra_fields='drop' (CLI: "
                        "--extra_fields drop) to keep such rows without their extra fields")
                records.append(dict(zip(header, row)))
                lines.append(start)
                start = reader.line_num + 1
        except csv.Error as error:
            raise ValueError(f"{path}: malformed CSV at line {reader.line_num}: {error}") from None
    return records, lines, header


def _check_header(path: Path, header: list[str]) -> None:
    duplicates = sorted({name for name in header if name and header.count(name) > 1})
    if duplicates:
        raise ValueError(f"{path}: duplicate column name(s) {duplicates} in the header")


def _read_jsonl(path: Path):
    records, lines, columns = [], [], {}
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}: line {number} is not valid JSON: {error.msg}") from None
            except (RecursionError, ValueError) as error:  # nesting too deep; an integer beyond Python's limit
                raise ValueError(f"{path}: line {number} is not usable JSON: {str(error)[:120]}") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}: line {number} is a JSON {type(record).__name__}, expected an object")
            columns.update(dict.fromkeys(record))
            records.append(record)
            lines.append(number)
    return records, lines, list(columns)


def _read_parquet(path: Path):
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except ImportError:
        raise ValueError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    except Exception as error:  # pyarrow raises several types for a corrupt file
        raise ValueError(f"{path}: unreadable Parquet file: {error}") from None
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict("records"), list(range(1, len(frame) + 1)), [str(column) for column in frame.columns]


def _cell(value):
    """A cell as the string a CSV export would hold (None stays None: an empty cell)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 42.0 is how Excel stores the ticket number 42
    return str(value)


def _read_xlsx(path: Path):
    """The first worksheet; the first non-empty row is the header; line numbers are Excel's row numbers."""
    try:
        import openpyxl
    except ImportError:
        raise ValueError(
            f"{path}: reading .xlsx needs openpyxl: pip install 'ticket-classifier[xlsx]' (or save the sheet as CSV)"
        ) from None
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # zipfile, XML and openpyxl errors for a corrupt or mislabelled file
        raise ValueError(f"{path}: unreadable Excel file: {type(error).__name__}: {error}") from None
    try:
        sheet = workbook.worksheets[0]
        header, records, lines = None, [], []
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            if all(value is None or (isinstance(value, str) and not value.strip()) for value in row):
                continue
            if header is None:
                header = ["" if value is None else str(value).strip() for value in row]
                _check_header(path, header)
                continue
            records.append({name: _cell(value) for name, value in zip(header, row) if name})
            lines.append(number)
    finally:
        workbook.close()
    if header is None:
        raise ValueError(f"{path}: the file is empty")
    return records, lines, [name for name in header if name]
