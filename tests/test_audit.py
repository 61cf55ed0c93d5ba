"""The audit (custom_trainer/audit.py, `ticket-classifier audit`): flipped labels found, overlapping queues found,
near-duplicates grouped, every row accounted for, the loader's errors for bad input, actions only when asked."""

import json

import numpy as np
import pandas as pd
import pytest

from custom_trainer.audit import apply_actions, audit_file, duplicate_key, near_duplicates, out_of_fold_probabilities

VOCABULARY = {
    "Email": "mailbox outlook inbox attachment calendar invite bounce signature",
    "Network": "wifi vpn ethernet router dns proxy latency packet",
    "Printing": "printer toner duplex tray scanner queue spooler colour",
    "Access": "password account locked mfa permission group login token",
}
FILLER = "please help urgent today again since morning user team office".split()


def tickets(queues: dict[str, str], per_queue: int, seed: int) -> pd.DataFrame:
    """Tickets whose words come from their queue's vocabulary (and some shared filler), each text unique."""
    rng = np.random.default_rng(seed)
    rows = []
    for queue, words in queues.items():
        words = words.split()
        for i in range(per_queue):
            text = " ".join(rng.choice(words, 5).tolist() + rng.choice(FILLER, 3).tolist())
            rows.append({"subject": f"{queue.lower()} issue {len(rows)}", "description": text, "category": queue})
    return pd.DataFrame(rows)


def test_flipped_labels_are_found(tmp_path):
    frame = tickets(VOCABULARY, 60, seed=0)
    frame["subject"] = [f"ticket {i}" for i in range(len(frame))]  # the subject must not give the queue away
    rng = np.random.default_rng(1)
    flipped = rng.choice(len(frame), 12, replace=False)
    queues = sorted(VOCABULARY)
    for row in flipped:
        frame.loc[row, "category"] = queues[(queues.index(frame.loc[row, "category"]) + 1) % len(queues)]
    frame.to_csv(tmp_path / "export.csv", index=False)
    report, flagged, audited = audit_file(tmp_path / "export.csv", ["subject", "description"], "category",
                                         progress=False)
    flipped_lines = set((flipped + 2).tolist())  # line 1 is the header
    found = set(flagged["line"].astype(int))
    assert len(found & flipped_lines) / len(found) >= 0.9  # precision of the flagged rows
    assert len(found & flipped_lines) / len(flipped) >= 0.6  # recall (confident learning is cautious on 240 rows)
    assert report["likely_label_errors"]["count"] == len(flagged)
    # Ranked by score over every ticket, the number flipped: precision at that number.
    labels = audited["category"].map({q: i for i, q in enumerate(queues)}).to_numpy()
    texts = (audited["subject"] + " " + audited["description"]).tolist()
    pred_probs = out_of_fold_probabilities(texts, labels, len(queues), progress=False)
    score = 1 - pred_probs[np.arange(len(labels)), labels]
    top = set(audited["line"].to_numpy()[np.argsort(-score)[:len(flipped)]].tolist())
    assert len(top & flipped_lines) / len(flipped) >= 0.75
    first = flagged.iloc[0]
    original = tickets(VOCABULARY, 60, seed=0)["category"][int(first["line"]) - 2]
    assert first["suggested"] == original and first["given"] != original and 0.5 < first["score"] <= 1


def test_two_queues_of_the_same_problems_are_suggested_for_a_merge(tmp_path):
    queues = {**VOCABULARY, "Printers": VOCABULARY["Printing"]}
    frame = tickets(queues, 50, seed=2)
    frame["subject"] = [f"ticket {i}" for i in range(len(frame))]
    frame.to_csv(tmp_path / "export.csv", index=False)
    report, _, _ = audit_file(tmp_path / "export.csv", ["subject", "description"], "category", progress=False)
    top = report["overlapping_queues"][0]
    assert sorted(top["queues"]) == ["Printers", "Printing"] and top["suggest_merge"]
    assert min(top["a_predicted_as_b"], top["b_predicted_as_a"]) >= 0.25
    assert report["suggested_merges"] == [top["queues"]]  # no distinct pair is suggested
    assert top["examples"]["a_predicted_as_b"][0]["line"] >= 2


def test_every_row_is_accounted_for_and_near_duplicates_are_grouped(tmp_path):
    frame = tickets(VOCABULARY, 20, seed=3)
    extra = pd.DataFrame([
        {"subject": "", "description": "", "category": "Email"},  # no text
        {"subject": "vpn down", "description": "since 9", "category": ""},  # no label
        {"subject": "Ticket INC0012", "description": "Hi Anna, printer toner empty on floor 3. Regards, Bob",
         "category": "Printing"},
        {"subject": "Ticket INC0987", "description": "Hello Tom, printer toner empty on floor 5. Thanks, Eve",
         "category": "Network"},
    ])
    pd.concat([frame, extra]).to_csv(tmp_path / "export.csv", index=False)
    report, _, audited = audit_file(tmp_path / "export.csv", ["subject", "description"], "category", progress=False)
    rows = report["rows"]
    assert rows["read"] == len(frame) + 4 and rows["audited"] == len(frame) + 2 == len(audited)
    assert rows["skipped"] == {"no_text": 1, "no_label": 1}
    assert rows["audited"] + sum(rows["skipped"].values()) == rows["read"]
    duplicates = report["near_duplicates"]
    assert duplicates["conflicting_groups"] == 1
    group = next(g for g in duplicates["largest"] if set(g["queues"]) == {"Network", "Printing"})
    assert group["lines"] == [len(frame) + 4, len(frame) + 5]


def test_duplicate_keys_ignore_numbers_greetings_and_signatures_only():
    same = duplicate_key("VPN INC001", "Hi Anna, the VPN drops every 5 minutes. Kind regards, Bob Smith, IT dept")
    assert same == duplicate_key("VPN INC779", "Hello Tom, the VPN drops every 10 minutes. Thanks, Eve")
    assert same != duplicate_key("VPN INC001", "Hi Anna, the VPN never connects. Kind regards, Bob")
    groups = near_duplicates(["a 1", "a 2", "b"], ["x", "x", "x"], np.array([0, 1, 0]))
    assert groups == [{"rows": [0, 1], "labels": [0, 1], "conflicting": True}]


def test_bad_input_gets_the_loaders_errors(tmp_path):
    tickets(VOCABULARY, 5, seed=4).to_csv(tmp_path / "export.csv", index=False)
    with pytest.raises(ValueError, match=r"export\.csv.*'queue'"):
        audit_file(tmp_path / "export.csv", ["subject", "description"], "queue", progress=False)
    with pytest.raises(ValueError, match="not found"):
        audit_file(tmp_path / "missing.csv", ["subject"], "category", progress=False)


def test_actions_apply_only_what_is_asked_and_say_what_they_did():
    frame = pd.DataFrame({"subject": ["a", "b", "c", "d"], "description": ["", "", "", ""],
                          "category": ["X", "Y", "Z", "X"], "line": [2, 3, 4, 5]})
    flagged = pd.DataFrame({"line": [3, 5], "score": [0.9, 0.4]})
    same, done = apply_actions(frame, flagged)
    assert same.equals(frame) and done == {}
    reviewed = pd.DataFrame({"line": [4, 2], "label": ["X", ""]})  # a blank label: left as it was
    changed, done = apply_actions(frame, flagged, drop_above=0.5, merges=["X+Z=XZ"], relabelled=reviewed)
    assert changed["line"].tolist() == [2, 4, 5] and changed["category"].tolist() == ["XZ", "XZ", "XZ"]
    assert done["relabelled"] == {"count": 1, "lines": [4]}  # line 4 (Z) became X before the merge
    assert done["merged"] == [{"queues": ["X", "Z"], "into": "XZ", "tickets": 3}]
    assert done["dropped"] == {"above_score": 0.5, "count": 1, "lines": [3]}
    with pytest.raises(ValueError, match=r"not found: \['W'\]"):
        apply_actions(frame, flagged, merges=["X+W"])


def test_the_audit_command_writes_its_report_and_a_cleaned_copy(tmp_path, capsys):
    from ticket_router.cli import main

    frame = tickets(VOCABULARY, 30, seed=5)
    frame.to_csv(tmp_path / "export.csv", index=False)
    assert main(["audit", "--input", str(tmp_path / "export.csv"), "--output_dir", str(tmp_path / "audit"),
                 "--quiet", "--write_clean", str(tmp_path / "clean.csv"), "--merge", "Email+Access"]) == 0
    report = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert report["rows"]["audited"] == 120 and report["actions"]["merged"][0]["tickets"] == 60
    clean = pd.read_csv(tmp_path / "clean.csv")
    assert len(clean) == 120 and set(clean["category"]) == {"Email", "Network", "Printing"}
    assert list(clean.columns) == list(frame.columns)  # the export's own columns
    issues = pd.read_csv(tmp_path / "audit" / "label_issues.csv")
    assert list(issues.columns[:4]) == ["line", "given", "suggested", "score"] and "label" in issues.columns
    assert "likely label errors" in capsys.readouterr().out
    assert main(["audit", "--input", str(tmp_path / "export.csv"), "--drop_above", "0.5"]) == 2  # needs --write_clean
    assert "give --write_clean" in capsys.readouterr().err


def test_the_cleaned_copy_is_the_data_byte_for_byte_except_what_was_asked(tmp_path):
    """Queues and texts a spreadsheet would take for formulas ("@Home Support", "-", "+49") come back as they were;
    only the merged labels change, and only in the label column."""
    import csv

    from ticket_router.cli import main

    frame = tickets(VOCABULARY, 30, seed=6).rename(columns={"category": "queue"})
    frame["queue"] = frame["queue"].replace({"Access": "@Home Support"})
    frame.loc[0, "description"] = "-starts with a dash " + frame.loc[0, "description"]
    frame.loc[1, "subject"] = "+49 30 1234 calls " + frame.loc[1, "subject"]
    frame.loc[2, "description"] = "=SUM(A1) looks like a formula " + frame.loc[2, "description"]
    frame["ticket_id"] = [f"INC{i:05d}" for i in range(len(frame))]
    frame.to_csv(tmp_path / "export.csv", index=False)
    flags = ["audit", "--input", str(tmp_path / "export.csv"), "--output_dir", str(tmp_path / "audit"), "--quiet",
             "--label_column", "queue"]
    assert main([*flags, "--write_clean", str(tmp_path / "same.csv")]) == 0
    with open(tmp_path / "export.csv", newline="") as a, open(tmp_path / "same.csv", newline="") as b:
        assert list(csv.reader(a)) == list(csv.reader(b))  # nothing asked: every value as it was
    assert main([*flags, "--write_clean", str(tmp_path / "merged.csv"), "--merge", "Email+Network=Comms"]) == 0
    with open(tmp_path / "export.csv", newline="") as a, open(tmp_path / "merged.csv", newline="") as b:
        before, after = list(csv.reader(a)), list(csv.reader(b))
    assert len(before) == len(after)
    queue = before[0].index("queue")
    for old, new in zip(before[1:], after[1:]):
        expected = "Comms" if old[queue] in ("Email", "Network") else old[queue]
        assert new[queue] == expected
        assert [v for i, v in enumerate(old) if i != queue] == [v for i, v in enumerate(new) if i != queue]
    assert "@Home Support" in {row[queue] for row in after[1:]}


def test_write_clean_never_overwrites_its_input(tmp_path, capsys):
    from ticket_router.cli import main

    tickets(VOCABULARY, 30, seed=7).to_csv(tmp_path / "export.csv", index=False)
    original = (tmp_path / "export.csv").read_bytes()
    (tmp_path / "link.csv").symlink_to(tmp_path / "export.csv")
    for target in (tmp_path / "export.csv", tmp_path / "link.csv", tmp_path / "." / "export.csv"):
        code = main(["audit", "--input", str(tmp_path / "export.csv"), "--output_dir", str(tmp_path / "audit"),
                     "--quiet", "--write_clean", str(target), "--merge", "Email+Access"])
        assert code == 2 and "is --input" in capsys.readouterr().err
        assert (tmp_path / "export.csv").read_bytes() == original
    assert not (tmp_path / "audit").exists()  # refused before any work
