"""`load_tickets`: CSV/JSONL/Parquet in, a stratified DatasetDict out, and a clear error for each bad input."""

import json

import pandas as pd
import pytest

from conftest import BENCHMARK_DATA
from ticket_data import load_tickets
from ticket_data.loading import DataPolicy

STRICT = DataPolicy(strict_data=True, rare_labels="error")

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
    pd.DataFrame({"Document": [f"{t} {i}" for i in range(4) for t in ("a b", "c d", "e f")],
                  "Topic": ["x", "y", "z"] * 4}).to_csv(path, index=False)
    data = load_tickets(path, text_columns=("Document",), label_column="Topic", policy=DataPolicy(min_examples_per_label=3))
    assert data["train"].features["label"].names == ["x", "y", "z"]
    row = data["train"][0]
    assert row["subject"][:3] in {"a b", "c d", "e f"} and row["description"] == ""


def test_emails_are_masked_and_bom_is_ignored(tmp_path):
    path = tmp_path / "bom.csv"
    body = "subject,description,category\n" + "".join(
        f"Mail from ann{i}@corp.example.com,text {i} {label},{label}\n" for i in range(6) for label in LABELS
    )
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    data = load_tickets(path, policy=DataPolicy(min_examples_per_label=3))
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


def test_strict_mode_refuses_rows_without_text_or_label_listed_by_line(tmp_path):
    path = write_tickets(tmp_path / "holes.csv")
    lines = path.read_text().splitlines()
    lines[3] = ",,Network"  # line 4: no text
    lines[7] = "a subject,a description,"  # line 8: no label
    lines[9] = " ,   ,Email"  # line 10: whitespace only is no text
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as error:
        load_tickets(path, policy=STRICT)
    message = str(error.value)
    assert "holes.csv" in message
    assert "2 row(s) with no text in ['subject', 'description'] (line(s) 4, 10)" in message
    assert "1 row(s) with no label in 'category' (line(s) 8)" in message


def test_jsonl_line_numbers_and_invalid_json(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [{"subject": "s", "description": "d", "category": "x"}] * 3 + [{"subject": "", "description": None, "category": "x"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(ValueError, match=r"t\.jsonl: 1 row\(s\) with no text .*line\(s\) 4\)"):
        load_tickets(path, policy=STRICT)
    path.write_text('{"subject": "s"}\n{not json}\n')
    with pytest.raises(ValueError, match=r"t\.jsonl: line 2 is not valid JSON"):
        load_tickets(path)


def test_class_too_small_to_stratify(tmp_path):
    path = write_tickets(tmp_path / "small.csv", rows_per_label=10)
    with path.open("a") as handle:
        handle.write("lonely,ticket,Database\nsecond,ticket,Database\n")
    with pytest.raises(ValueError, match=r"small\.csv: too few rows to stratify by 'category': label\(s\) 'Database' \(2\)"):
        load_tickets(path, policy=DataPolicy(min_examples_per_label=1))
    with pytest.raises(ValueError, match=r"small\.csv: label\(s\) 'Database' \(2\) in 'category' have fewer than "
                       r"min_examples_per_label=10 rows \(rare_labels is 'error'"):
        load_tickets(path, policy=STRICT)


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
        load_tickets(train, test=test, policy=STRICT)


def test_unsupported_extension_and_bad_sizes(tmp_path):
    path = tmp_path / "tickets.docx"
    path.write_text("x")
    with pytest.raises(ValueError, match=r"tickets\.docx: unsupported file type '\.docx'"):
        load_tickets(path)
    with pytest.raises(ValueError, match="validation_size must be a fraction"):
        load_tickets(write_tickets(tmp_path / "ok.csv"), validation_size=1.5)


# ---- real exports: long tails, holes, duplicates, artefacts (every row read is accounted for) ----

from ticket_data.loading import load_tickets_with_report, summarize_report  # noqa: E402

BIG = {"Network": 30, "Email": 25, "Printing": 20}
RARE = {"Payroll": 4, "Facilities": 3, "Legal": 3, "Telephony": 2}  # 12 rows together: a bucket of its own


def write_export(path, counts, start=0):
    rows = [
        {"subject": f"{label} issue number {start + i}", "description": f"body {start + i} of a {label} ticket",
         "category": label}
        for label, n in counts.items()
        for i in range(n)
    ]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def assert_accounted(report):
    for part in report["files"].values():
        assert part["kept"] + part["skipped_total"] + sum(part["removed"].values()) == part["rows_read"], part


def test_rare_labels_merge_into_a_bucket_by_default(tmp_path):
    data, report = load_tickets_with_report(write_export(tmp_path / "tail.csv", {**BIG, **RARE}))
    bucket = "Other (rare queues)"
    assert data["train"].features["label"].names == sorted([*BIG, bucket])
    assert report["labels"]["merged_into"] == bucket
    assert report["labels"]["merged"] == {"Facilities": 3, "Legal": 3, "Payroll": 4, "Telephony": 2}
    assert report["labels"]["kept"][bucket] == 12 and report["labels"]["dropped"] == {}
    assert sum(len(data[split]) for split in data) == 87
    assert_accounted(report)
    summary = summarize_report(report)
    assert "merged into 'Other (rare queues)' (never auto-routed): Facilities (3)" in summary


def test_a_bucket_too_small_to_learn_is_dropped_and_said_so(tmp_path):
    _, report = load_tickets_with_report(write_export(tmp_path / "tail.csv", {**BIG, "Payroll": 2, "Legal": 1}))
    assert report["labels"]["merged_into"] is None
    assert report["labels"]["dropped"] == {"Legal": 1, "Payroll": 2}
    assert "fewer than 10" in report["labels"]["dropped_because"]
    assert report["files"]["train"]["removed"]["rare_labels"] == 3
    assert_accounted(report)


def test_drop_policy_removes_rare_rows(tmp_path):
    data, report = load_tickets_with_report(
        write_export(tmp_path / "tail.csv", {**BIG, **RARE}), policy=DataPolicy(rare_labels="drop")
    )
    assert data["train"].features["label"].names == sorted(BIG)
    assert report["labels"]["dropped"] == {"Facilities": 3, "Legal": 3, "Payroll": 4, "Telephony": 2}
    assert report["files"]["train"]["removed"]["rare_labels"] == 12
    assert_accounted(report)


def test_custom_threshold_and_bucket_name(tmp_path):
    data, report = load_tickets_with_report(
        write_export(tmp_path / "tail.csv", {**BIG, **RARE}),
        policy=DataPolicy(min_examples_per_label=4, rare_label_name="Triage"),
    )
    assert report["labels"]["merged"] == {"Facilities": 3, "Legal": 3, "Telephony": 2}
    assert data["train"].features["label"].names == sorted([*BIG, "Payroll", "Triage"])
    with pytest.raises(ValueError, match=r"rare_label_name 'Email' is already a label in 'category' with 25 rows"):
        load_tickets(write_export(tmp_path / "t2.csv", {**BIG, **RARE}), policy=DataPolicy(rare_label_name="Email"))
    with pytest.raises(ValueError, match="rare_labels must be one of"):
        DataPolicy(rare_labels="keep")
    with pytest.raises(ValueError, match="min_examples_per_label must be an integer >= 1, got 0"):
        DataPolicy(min_examples_per_label=0)


def test_rows_without_text_or_label_are_skipped_and_reported_by_line(tmp_path):
    path = write_export(tmp_path / "holes.csv", BIG)
    lines = path.read_text().splitlines()
    lines[3] = ",,Network"  # line 4: no text
    lines[7] = "a subject,a description,"  # line 8: no label
    lines[9] = " ,   ,"  # line 10: neither (counted once, as no text)
    path.write_text("\n".join(lines) + "\n")
    data, report = load_tickets_with_report(path)
    skipped = report["files"]["train"]["skipped"]
    assert skipped["no_text"]["lines"] == [4, 10] and skipped["no_text"]["count"] == 2
    assert skipped["no_label"]["lines"] == [8]
    assert sum(len(data[split]) for split in data) == 75 - 3
    assert_accounted(report)
    assert "skipped: 2 no text (lines 4, 10), 1 no label (lines 8)" in summarize_report(report)


def test_copies_of_training_tickets_leave_validation_and_test(tmp_path):
    path = write_export(tmp_path / "dups.csv", BIG)
    frame = pd.read_csv(path)
    # 30 copies of 10 tickets, one with different case and spacing (identical after normalisation).
    copies = pd.concat([frame.iloc[:10]] * 3, ignore_index=True)
    copies.loc[0, "subject"] = "  NETWORK   issue number 0 "
    pd.concat([frame, copies], ignore_index=True).to_csv(path, index=False)
    data, report = load_tickets_with_report(path)
    train_keys = {(s + "\n" + d).casefold() for s, d in zip(data["train"]["subject"], data["train"]["description"])}
    for split in ("validation", "test"):
        keys = [(s + "\n" + d).casefold() for s, d in zip(data[split]["subject"], data[split]["description"])]
        assert not train_keys & set(keys), split
    duplicates = report["duplicates"]
    assert duplicates["rows_repeating_an_earlier_text"] == 30
    removed = duplicates["removed_from_validation"] + duplicates["removed_from_test"]
    assert report["files"]["train"]["removed"]["duplicates_of_train"] == removed
    assert sum(len(data[split]) for split in data) == 105 - removed
    assert_accounted(report)


def test_a_given_test_file_is_kept_and_its_overlap_reported(tmp_path):
    train = write_export(tmp_path / "train.csv", {**BIG, **RARE})
    test = tmp_path / "test.csv"
    overlap = pd.read_csv(train).iloc[:5]  # 5 Network tickets also in the training file
    extra = pd.DataFrame({"subject": ["payroll slip", "new queue ticket", "legal hold"],
                          "description": ["missing", "never seen", "request"],
                          "category": ["Payroll", "Brand New Queue", "Legal"]})
    pd.concat([overlap, extra]).to_csv(test, index=False)
    data, report = load_tickets_with_report(train, test=test)
    assert len(data["test"]) == 8  # kept as given
    names = data["test"].features["label"].names
    assert sorted(names[i] for i in data["test"]["label"][-3:]) == ["Other (rare queues)"] * 3
    train_keys = {(a + "\n" + b).casefold() for a, b in zip(data["train"]["subject"], data["train"]["description"])}
    expected = sum((a + "\n" + b).casefold() in train_keys for a, b in zip(overlap["subject"], overlap["description"]))
    assert expected > 0 and report["duplicates"]["test_file_rows_also_in_train"] == expected
    assert_accounted(report)
    # With 'drop', the test rows of dropped or unseen labels are removed and counted.
    data, report = load_tickets_with_report(train, test=test, policy=DataPolicy(rare_labels="drop"))
    assert len(data["test"]) == 5
    assert report["files"]["test"]["labels_not_learned"] == {"Brand New Queue": 1, "Legal": 1, "Payroll": 1}
    assert_accounted(report)


def test_export_artefacts_are_cleaned(tmp_path):
    path = write_export(tmp_path / "artefacts.csv", BIG)
    frame = pd.read_csv(path)
    frame.loc[0, "description"] = "Hello_x000D_\n<p>The&nbsp;printer &amp; scanner</p>\u200b fail!!!!!! ------"
    frame.to_csv(path, index=False)
    data = load_tickets(path)
    texts = [d for split in data for d in data[split]["description"]]
    assert "Hello The printer & scanner fail" in texts
