"""Bring your own tickets: CSV, JSONL or Parquet exports turned into a train/validation/test DatasetDict.

Everything is read and checked before anything is built, so bad input raises one `ValueError` that names the
file and the problem, and never yields a half-built dataset.
"""

from __future__ import annotations

import csv
import math
import json
from collections.abc import Sequence
from pathlib import Path

import datasets
import pandas as pd
from sklearn.model_selection import train_test_split

from .preprocessing import clean_text

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
_SHOW = 5  # how many offending line numbers an error message lists


def load_tickets(
    train: str | Path,
    test: str | Path | None = None,
    text_columns: Sequence[str] = ("subject", "description"),
    label_column: str = "category",
    validation_size: float = 0.1,
    test_size: float = 0.1,
    seed: int = 42,
) -> datasets.DatasetDict:
    """Load labelled tickets; carve the missing splits out of ``train``, stratified by label.

    With one text column the ticket text goes to ``subject`` and ``description`` is empty; with more, the first
    is the subject and the rest, joined, the description. Labels are the data's own, in sorted order.
    """
    if isinstance(text_columns, str):
        text_columns = (text_columns,)
    text_columns = tuple(text_columns)
    if not text_columns:
        raise ValueError("text_columns must name at least one column")
    for name, value in (("validation_size", validation_size), ("test_size", test_size)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be a fraction between 0 and 1 (exclusive), got {value!r}")

    train_frame = read_ticket_file(train, text_columns, label_column)
    frames = {}
    if test is not None:
        test_frame = read_ticket_file(test, text_columns, label_column)
        unseen = sorted(set(test_frame["category"]) - set(train_frame["category"]))
        if unseen:
            raise ValueError(
                f"{test}: label(s) {unseen} in column {label_column!r} never occur in the training file {train}; "
                "a model cannot learn them"
            )
        frames["test"] = test_frame
        carve = {"validation": validation_size}
    else:
        carve = {"test": test_size, "validation": validation_size}

    _check_stratifiable(train_frame, train, label_column, carve)
    rest = train_frame
    n_labels = train_frame["category"].nunique()
    for split, size in carve.items():
        # Sizes are fractions of the whole file; a small file still gets one row of every label per split.
        n_rows = max(math.ceil(size * len(train_frame)), n_labels)
        try:
            rest, frames[split] = train_test_split(
                rest, test_size=n_rows, random_state=seed, stratify=rest["category"]
            )
        except ValueError as error:
            raise ValueError(
                f"{train}: cannot carve a stratified {split} split of {size:.0%} by column {label_column!r}: {error}"
            ) from None
    frames["train"] = rest

    label_names = sorted(train_frame["category"].unique())
    features = datasets.Features(
        {
            "subject": datasets.Value("string"),
            "description": datasets.Value("string"),
            "label": datasets.ClassLabel(names=label_names),
        }
    )
    return datasets.DatasetDict(
        {
            split: datasets.Dataset.from_pandas(
                frames[split].rename(columns={"category": "label"})[["subject", "description", "label"]],
                features=features,
                preserve_index=False,
            )
            for split in ("train", "validation", "test")
        }
    )


def read_ticket_file(
    path: str | Path, text_columns: Sequence[str], label_column: str | None
) -> pd.DataFrame:
    """Read and check one file: a frame with ``subject``, ``description`` (cleaned) and ``category``.

    ``label_column=None`` reads unlabelled tickets (for prediction) and keeps rows with no text, marked by an
    empty subject and description, so the caller can report them instead of dropping them.
    """
    path = Path(path)
    records, line_numbers, columns = read_records(path)
    wanted = list(text_columns) + ([label_column] if label_column is not None else [])
    missing = [column for column in wanted if column not in columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected {wanted}, found {list(columns)}")

    frame = pd.DataFrame({column: [record.get(column) for record in records] for column in wanted})
    subject, description = ticket_texts(frame, text_columns)
    result = pd.DataFrame({"subject": subject, "description": description, "line": line_numbers})
    if label_column is None:
        return result

    no_text = (result["subject"] == "") & (result["description"] == "")
    labels = frame[label_column].map(clean_text)
    no_label = labels == ""
    problems = []
    for mask, what in ((no_text, f"no text in {list(text_columns)}"), (no_label, f"no label in {label_column!r}")):
        if mask.any():
            lines = result.loc[mask, "line"].tolist()
            shown = ", ".join(map(str, lines[:_SHOW])) + (", ..." if len(lines) > _SHOW else "")
            problems.append(f"{len(lines)} row(s) with {what} (line(s) {shown})")
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    result["category"] = labels
    return result


def ticket_texts(frame: pd.DataFrame, text_columns: Sequence[str]) -> tuple[pd.Series, pd.Series]:
    """Cleaned (subject, description): the first text column, and the others joined (empty with one column)."""
    texts = frame[list(text_columns)].map(clean_text)
    subject = texts[text_columns[0]]
    if len(text_columns) > 1:
        description = texts[list(text_columns[1:])].agg(lambda row: " ".join(part for part in row if part), axis=1)
    else:
        description = pd.Series([""] * len(frame), index=frame.index)
    return subject, description


def read_records(path: Path) -> tuple[list[dict], list[int], list[str]]:
    """Rows as dicts of strings, the file line (or row number) of each, and the column names."""
    if not path.exists():
        raise ValueError(f"{path}: file not found")
    if not path.is_file():
        raise ValueError(f"{path}: not a file")
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r}; expected one of {sorted(FORMATS)}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: the file is empty")
    try:
        if kind == "csv":
            records, lines, columns = _read_csv(path)
        elif kind == "jsonl":
            records, lines, columns = _read_jsonl(path)
        else:
            records, lines, columns = _read_parquet(path)
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: undecodable bytes at byte {error.start} ({error.reason}); save the file as UTF-8"
        ) from None
    if not records:
        raise ValueError(f"{path}: the file has no rows")
    return records, lines, columns


def _read_csv(path: Path):
    with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: exports from Excel start with a BOM
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path}: the file is empty") from None
        except csv.Error as error:
            raise ValueError(f"{path}: unreadable CSV header: {error}") from None
        header = [name.strip() for name in header]
        duplicates = sorted({name for name in header if header.count(name) > 1})
        if duplicates:
            raise ValueError(f"{path}: duplicate column name(s) {duplicates} in the header")
        records, lines = [], []
        start = reader.line_num + 1
        try:
            for row in reader:
                if not row:  # a blank line
                    start = reader.line_num + 1
                    continue
                records.append(dict(zip(header, row)))
                lines.append(start)
                start = reader.line_num + 1
        except csv.Error as error:
            raise ValueError(f"{path}: malformed CSV at line {reader.line_num}: {error}") from None
    return records, lines, header


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
            if not isinstance(record, dict):
                raise ValueError(f"{path}: line {number} is a JSON {type(record).__name__}, expected an object")
            columns.update(dict.fromkeys(record))
            records.append(record)
            lines.append(number)
    return records, lines, list(columns)


def _read_parquet(path: Path):
    try:
        frame = pd.read_parquet(path)
    except Exception as error:  # pyarrow raises several types for a corrupt file
        raise ValueError(f"{path}: unreadable Parquet file: {error}") from None
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict("records"), list(range(1, len(frame) + 1)), [str(column) for column in frame.columns]


def _check_stratifiable(frame: pd.DataFrame, path, label_column: str, carve: dict[str, float]) -> None:
    """Each label needs a row for every split it is cut into, plus one left for training."""
    needed = len(carve) + 1
    counts = frame["category"].value_counts()
    scarce = counts[counts < needed]
    if len(scarce):
        listed = ", ".join(f"{label!r} ({count})" for label, count in scarce.sort_index().items())
        raise ValueError(
            f"{path}: too few rows to stratify by {label_column!r}: label(s) {listed} need at least {needed} rows "
            f"each to be split into {['train', *carve]}"
        )
