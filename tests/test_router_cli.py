"""`ticket-classifier predict/evaluate` on a tiny trained model."""

import json

import pandas as pd
import pytest

from ticket_router.cli import main
from ticket_router.tables import NO_TEXT


@pytest.fixture()
def model_dir(tiny_run):
    return str(tiny_run[0] / "model")


def test_single_ticket_prints_top3_and_route(model_dir, capsys):
    assert main(["predict", "--model", model_dir, "--subject", "Printer paper jam",
                 "--description", "Urgent: Printer paper jam"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(".")[0] for line in out[:3]] == ["1", "2", "3"]
    assert out[0].endswith("%") and out[3].startswith("route: ")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_file_routing_keeps_every_row(model_dir, tmp_path, tiny_run, suffix):
    frame = pd.read_csv(tiny_run[0] / "reports" / "predictions.csv")[["subject", "description"]].head(20)
    frame["ticket_id"] = range(100, 120)
    frame.loc[3, ["subject", "description"]] = ["", ""]  # a row with no text
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    target = tmp_path / f"out{suffix}"
    assert main(["predict", "--model", model_dir, "--input", str(source), "--output", str(target)]) == 0
    routed = {".csv": pd.read_csv, ".jsonl": lambda p: pd.read_json(p, lines=True), ".parquet": pd.read_parquet}[suffix](target)
    assert len(routed) == 20 and routed["ticket_id"].astype(str).tolist() == [str(i) for i in range(100, 120)]
    assert {"predicted", "score", "top3", "route", "error"} <= set(routed.columns)
    assert routed.loc[3, "error"] == NO_TEXT and routed.loc[3, "route"] == "triage"
    ok = routed.drop(index=3)
    assert ok["error"].isna().all() and set(ok["route"]) <= {"auto", "triage"}
    assert all(len(json.loads(t)) == 3 for t in ok["top3"])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial file left


def test_batch_matches_the_training_predictions(model_dir, tmp_path, tiny_run):
    expected = pd.read_csv(tiny_run[0] / "reports" / "predictions.csv")
    source = tmp_path / "test.csv"
    expected[["subject", "description"]].to_csv(source, index=False)
    main(["predict", "--model", model_dir, "--input", str(source), "--output", str(tmp_path / "o.csv"),
          "--batch_size", "7"])
    routed = pd.read_csv(tmp_path / "o.csv")
    assert routed["predicted"].tolist() == expected["predicted"].tolist()
    assert routed["score"].tolist() == pytest.approx(expected["score"].tolist(), abs=1e-5)
    assert routed["route"].tolist() == expected["route"].tolist()


def test_evaluate_prints_report_and_routing(model_dir, tiny_run, capsys):
    predictions = tiny_run[0] / "reports" / "predictions.csv"
    assert main(["evaluate", "--model", model_dir, "--input", str(predictions), "--label_column", "label",
                 "--n_resamples", "100"]) == 0
    out = capsys.readouterr().out
    assert "macro avg" in out and "routing (" in out
    line = next(line for line in out.splitlines() if "evaluate.evaluator" in line)  # the stock pipeline, scored
    accuracy = float(line.split("accuracy ")[1].split()[0])
    assert accuracy == pytest.approx(tiny_run[1]["test"]["accuracy"], abs=1e-4)
    low, high = (float(v) for v in line.split("accuracy ")[1].split("[")[1].split("]")[0].split(", "))
    assert low <= accuracy <= high and "100 bootstrap resamples" in line and "tickets/s" in line
    macro = float(line.split("macro-F1 ")[1].split()[0])
    assert macro == pytest.approx(tiny_run[1]["test"]["macro_f1"], abs=1e-4)


def test_bad_inputs_are_clear_errors(model_dir, tmp_path, capsys, monkeypatch):
    assert main(["predict", "--model", model_dir, "--input", str(tmp_path / "none.csv"), "--output", "x.csv"]) == 2
    assert "none.csv: file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"title": ["x"]}).to_csv(bad, index=False)
    assert main(["predict", "--model", model_dir, "--input", str(bad), "--output", str(tmp_path / "o.csv")]) == 2
    assert "missing column(s) ['subject', 'description']" in capsys.readouterr().err
    labelled = tmp_path / "lab.csv"
    pd.DataFrame({"subject": ["a"], "description": ["b"], "category": ["Nonsense"]}).to_csv(labelled, index=False)
    assert main(["evaluate", "--model", model_dir, "--input", str(labelled)]) == 2
    assert "label(s) ['Nonsense']" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path), "--subject", "x"]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    uvicorn = pytest.importorskip("uvicorn", reason="serve needs the serve extra")
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)  # a check that fails would not start a server
    assert main(["serve", "--model", model_dir, "--workers", "0"]) == 2  # refused before the server starts
    assert "workers must be an integer >= 1, got 0" in capsys.readouterr().err
    assert main(["serve", "--model", model_dir, "--score_batch", "0"]) == 2
    assert "score_batch must be an integer >= 1, got 0" in capsys.readouterr().err


def test_monitor_writes_report_and_plot_and_exit_code_follows_the_checks(model_dir, tiny_run, tmp_path, capsys):
    predictions = tiny_run[0] / "reports" / "predictions.csv"
    code = main(["monitor", "--model", model_dir, "--input", str(predictions), "--label_column", "label",
                 "--output_dir", str(tmp_path / "mon")])
    report = json.loads((tmp_path / "mon" / "monitor.json").read_text())
    assert code == (0 if report["ok"] else 1)
    assert (tmp_path / "mon" / "monitor.png").stat().st_size > 0
    assert report["tickets"] == len(pd.read_csv(predictions))
    assert "misrouting" in report and report["new_queues"] == {}
    assert "live tickets against" in capsys.readouterr().out
    # A file whose labels the model has never seen: every one of them is a new queue, and the monitor says so.
    frame = pd.read_csv(predictions).assign(label="Cloud Platform")
    frame.to_csv(tmp_path / "new.csv", index=False)
    assert main(["monitor", "--model", model_dir, "--input", str(tmp_path / "new.csv"), "--label_column", "label",
                 "--output_dir", str(tmp_path / "mon2")]) == 1
    assert "queue(s) the model does not know: Cloud Platform" in capsys.readouterr().out


def test_monitor_names_a_missing_label_column(model_dir, tiny_run, tmp_path, capsys):
    predictions = tiny_run[0] / "reports" / "predictions.csv"
    assert main(["monitor", "--model", model_dir, "--input", str(predictions), "--label_column", "queue",
                 "--output_dir", str(tmp_path / "mon")]) == 2
    assert "missing column(s) ['queue']" in capsys.readouterr().err


def test_formula_like_ticket_text_is_escaped_in_csv_outputs(model_dir, tmp_path):
    tickets = pd.DataFrame({"subject": ["=HYPERLINK(\"http://x\",\"click\")", "@SUM(A1:A9)", "+1+1", "printer jam"],
                            "description": ["-2+3", "fine", "\tcmd", "paper stuck"]})
    tickets.to_csv(tmp_path / "in.csv", index=False)
    assert main(["predict", "--model", model_dir, "--input", str(tmp_path / "in.csv"),
                 "--output", str(tmp_path / "out.csv")]) == 0
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert out["subject"].tolist() == ["'=HYPERLINK(\"http://x\",\"click\")", "'@SUM(A1:A9)", "'+1+1", "printer jam"]
    assert out["description"].tolist()[:3] == ["'-2+3", "fine", "'\tcmd"]
    # JSONL keeps the text as it was: only spreadsheets evaluate formulas.
    assert main(["predict", "--model", model_dir, "--input", str(tmp_path / "in.csv"),
                 "--output", str(tmp_path / "out.jsonl")]) == 0
    assert pd.read_json(tmp_path / "out.jsonl", lines=True)["subject"][2] == "+1+1"


def test_bad_output_name_fails_before_the_model_loads(tmp_path, capsys):
    (tmp_path / "in.csv").write_text("subject,description\na,b\n")
    # The model folder does not exist: reaching the model would give a different error.
    assert main(["predict", "--model", str(tmp_path / "no_model"), "--input", str(tmp_path / "in.csv"),
                 "--output", str(tmp_path / "x.txt")]) == 2
    assert "unsupported output type '.txt'" in capsys.readouterr().err
    assert main(["predict", "--model", str(tmp_path / "no_model"), "--input", str(tmp_path / "missing.csv"),
                 "--output", str(tmp_path / "x.csv")]) == 2
    assert "missing.csv: file not found" in capsys.readouterr().err


@pytest.mark.process
def test_help_imports_nothing_heavy(tmp_path):
    """`ticket-classifier --help` must answer at once: no torch, transformers, pandas or numpy behind it."""
    import subprocess
    import sys

    code = ("import sys; from ticket_router.cli import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'transformers', 'pandas', 'numpy', 'onnxruntime') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def test_predict_with_the_onnx_backend(tiny_onnx, capsys):
    assert main(["predict", "--onnx", "--model", str(tiny_onnx), "--subject", "Printer paper jam"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("1. ") and out[3].startswith("route: ")


def test_predict_explains_one_ticket_and_refuses_to_explain_a_file(tiny_onnx, tmp_path, capsys):
    assert main(["predict", "--onnx", "--model", str(tiny_onnx), "--subject", "Printer paper jam", "--explain"]) == 0
    out = capsys.readouterr().out
    assert "words that decided" in out and "(4 forward passes;" in out and "'paper'" in out
    assert main(["predict", "--onnx", "--model", str(tiny_onnx), "--input", str(tmp_path / "in.csv"), "--output",
                 str(tmp_path / "out.csv"), "--explain"]) == 2
    assert "--explain and --similar take one ticket" in capsys.readouterr().err


def test_broken_inputs_and_folders_end_in_one_line_not_a_traceback(model_dir, tiny_run, tmp_path, capsys):
    import shutil

    nested = tmp_path / "nested.jsonl"
    nested.write_text('{"subject": "ok", "description": "fine"}\n' + "[" * 50_000 + "]" * 50_000 + "\n")
    assert main(["predict", "--model", model_dir, "--input", str(nested), "--output", str(tmp_path / "o.csv")]) == 2
    assert "nested.jsonl: line 2 is not usable JSON" in capsys.readouterr().err
    shifted = tmp_path / "shifted.csv"
    shifted.write_text("subject,description\nvpn,drops hourly\nprinter,jams, again and again\n")
    assert main(["predict", "--model", model_dir, "--input", str(shifted), "--output", str(tmp_path / "o.csv")]) == 2
    assert "shifted.csv: line 3 has 3 fields, the header 2" in capsys.readouterr().err
    assert main(["predict", "--model", model_dir, "--input", str(shifted), "--output", str(tmp_path / "o.csv"),
                 "--extra_fields", "drop"]) == 0
    assert pd.read_csv(tmp_path / "o.csv")["description"].tolist() == ["drops hourly", "jams"]
    broken = tmp_path / "broken_model"
    shutil.copytree(tiny_run[0] / "model", broken, ignore=shutil.ignore_patterns("onnx"))
    config = json.loads((broken / "config.json").read_text())
    del config["id2label"]
    (broken / "config.json").write_text(json.dumps(config))
    assert main(["predict", "--model", str(broken), "--subject", "vpn"]) == 2
    assert "config.json does not match its checksum" in capsys.readouterr().err
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "out.csv").mkdir()  # the output name is taken by a folder
    assert main(["predict", "--model", model_dir, "--input", str(shifted), "--extra_fields", "drop",
                 "--output", str(tmp_path / "ro" / "out.csv")]) == 2
    assert "is a folder" in capsys.readouterr().err
