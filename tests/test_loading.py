"""`load_tickets`: CSV/JSONL/Parquet in, a stratified DatasetDict out, and a clear error for each bad input."""

import json

import pandas as pd
import pytest

from conftest import BENCHMARK_DATA
from ticket_data import load_tickets

LABELS = ["Network", "Email", "Printing"]


def write_tickets(path, rows_per_label=10, fmt="csv"):
    rows = [
        {"subject": f"{label} problem {i}", "description": f"details {i} about {label.lower()}", "category": label}
        for label in LABELS
        for i in range(rows_per_label)
    ]
    frame = pd.DataFrame(rows)
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    return path


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_each_format_loads_with_carved_stratified_splits(tmp_path, fmt):
    path = write_tickets(tmp_path / f"tickets.{fmt}", rows_per_label=20, fmt=fmt)
    data = load_tickets(path)
    assert data["train"].features["label"].names == sorted(LABELS)
    assert {split: len(data[split]) for split in data} == {"train": 48, "validation": 6, "test": 6}
    for split in data:
        assert sorted(set(data[split]["label"])) == [0, 1, 2], split
    assert data["train"][0]["subject"].endswith(tuple("0123456789"))


def test_given_test_file_is_kept_whole_and_validation_is_carved(tmp_path):
    train = write_tickets(tmp_path / "train.csv", rows_per_label=20)
    test = write_tickets(tmp_path / "test.csv", rows_per_label=3)
    data = load_tickets(train, test=test)
    assert len(data["test"]) == 9
    assert len(data["validation"]) == 6 and len(data["train"]) == 54


def test_one_text_column_and_custom_label_column(tmp_path):
    path = tmp_path / "docs.csv"
    pd.DataFrame({"Document": ["a b", "c d", "e f"] * 4, "Topic": ["x", "y", "z"] * 4}).to_csv(path, index=False)
    data = load_tickets(path, text_columns=("Document",), label_column="Topic")
    assert data["train"].features["label"].names == ["x", "y", "z"]
    row = data["train"][0]
    assert row["subject"] in {"a b", "c d", "e f"} and row["description"] == ""


def test_emails_are_masked_and_bom_is_ignored(tmp_path):
    path = tmp_path / "bom.csv"
    body = "subject,description,category\n" + "".join(
        f"Mail from ann{i}@corp.example.com,text {i},{label}\n" for i in range(6) for label in LABELS
    )
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    data = load_tickets(path)
    assert all(s.startswith("Mail from [EMAIL]") for s in data["train"]["subject"])


@pytest.mark.skipif(not (BENCHMARK_DATA / "train.csv").exists(), reason=f"benchmark data not found in {BENCHMARK_DATA}")
def test_real_benchmark_loads_with_eight_labels():
    data = load_tickets(
        BENCHMARK_DATA / "train.csv",
        test=BENCHMARK_DATA / "test.csv",
        text_columns=("Document",),
        label_column="Topic_group",
    )
    assert len(data["train"].features["label"].names) == 8
    assert len(data["test"]) == 9568
    assert len(data["train"]) + len(data["validation"]) == 38269


# ---- bad input: every case names the file and says what is wrong ----


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"nowhere\.csv: file not found"):
        load_tickets(tmp_path / "nowhere.csv")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv: the file is empty"):
        load_tickets(path)


def test_header_only_file(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("subject,description,category\n")
    with pytest.raises(ValueError, match=r"header\.csv: the file has no rows"):
        load_tickets(path)


def test_missing_column_names_expected_and_found(tmp_path):
    path = tmp_path / "cols.csv"
    pd.DataFrame({"title": ["a"], "body": ["b"], "category": ["x"]}).to_csv(path, index=False)
    with pytest.raises(ValueError) as error:
        load_tickets(path)
    message = str(error.value)
    assert "cols.csv" in message
    assert "missing column(s) ['subject', 'description']" in message
    assert "found ['title', 'body', 'category']" in message


def test_rows_without_text_or_label_are_listed_by_line(tmp_path):
    path = write_tickets(tmp_path / "holes.csv")
    lines = path.read_text().splitlines()
    lines[3] = ",,Network"  # line 4: no text
    lines[7] = "a subject,a description,"  # line 8: no label
    lines[9] = " ,   ,Email"  # line 10: whitespace only is no text
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as error:
        load_tickets(path)
    message = str(error.value)
    assert "holes.csv" in message
    assert "2 row(s) with no text in ['subject', 'description'] (line(s) 4, 10)" in message
    assert "1 row(s) with no label in 'category' (line(s) 8)" in message


def test_jsonl_line_numbers_and_invalid_json(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [{"subject": "s", "description": "d", "category": "x"}] * 3 + [{"subject": "", "description": None, "category": "x"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(ValueError, match=r"t\.jsonl: 1 row\(s\) with no text .*line\(s\) 4\)"):
        load_tickets(path)
    path.write_text('{"subject": "s"}\n{not json}\n')
    with pytest.raises(ValueError, match=r"t\.jsonl: line 2 is not valid JSON"):
        load_tickets(path)


def test_class_too_small_to_stratify(tmp_path):
    path = write_tickets(tmp_path / "small.csv", rows_per_label=10)
    with path.open("a") as handle:
        handle.write("lonely,ticket,Database\nsecond,ticket,Database\n")
    with pytest.raises(ValueError, match=r"small\.csv: too few rows to stratify by 'category': label\(s\) 'Database' \(2\)"):
        load_tickets(path)


def test_undecodable_bytes(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("subject,description,category\ncaf\xe9,cr\xe8me,x\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.csv: undecodable bytes at byte \d+.*UTF-8"):
        load_tickets(path)


def test_test_labels_unknown_to_train(tmp_path):
    train = write_tickets(tmp_path / "train.csv")
    test = tmp_path / "test.csv"
    pd.DataFrame({"subject": ["a"], "description": ["b"], "category": ["Database"]}).to_csv(test, index=False)
    with pytest.raises(ValueError, match=r"test\.csv: label\(s\) \['Database'\] .* never occur in the training file"):
        load_tickets(train, test=test)


def test_unsupported_extension_and_bad_sizes(tmp_path):
    path = tmp_path / "tickets.xlsx"
    path.write_text("x")
    with pytest.raises(ValueError, match=r"tickets\.xlsx: unsupported file type '\.xlsx'"):
        load_tickets(path)
    with pytest.raises(ValueError, match="validation_size must be a fraction"):
        load_tickets(write_tickets(tmp_path / "ok.csv"), validation_size=1.5)
