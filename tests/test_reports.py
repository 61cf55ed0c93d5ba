import json

import numpy as np
import pandas as pd
import pytest

from custom_trainer import reports

LABELS = ["Email", "Network", "Printing"]


def report_inputs(run: int):
    frame = pd.DataFrame({"subject": ["vpn down", "=HYPERLINK(1)", "toner"], "description": ["a", "b", "c"],
                          "label": [1, 0, 2]})
    logits = np.array([[0.1, 2.0, 0.0], [1.5, 0.2, 0.1], [0.0, 0.3, 2.2]]) * run
    history = [{"epoch": 1, "train_loss": 1.0, "eval_loss": 0.9, "eval_macro_f1": 0.5}]
    return {"metrics": {"run": run}, "label_names": LABELS, "test_frame": frame, "test_logits": logits,
            "history": history}


def test_reports_are_written_whole(tmp_path):
    reports.write_reports(tmp_path, **report_inputs(1))
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"run": 1}
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert predictions["predicted"].tolist() == ["Network", "Email", "Printing"]
    assert predictions["subject"][1].startswith("'=")  # spreadsheet formulas escaped
    assert {p.name for p in tmp_path.iterdir()} == {"metrics.json", "classification_report.txt", "predictions.csv",
                                                   "confusion_matrix.png", "training_curves.png"}


def test_a_run_that_dies_while_reporting_leaves_the_earlier_reports_whole(tmp_path, monkeypatch):
    reports.write_reports(tmp_path, **report_inputs(1))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken_plot(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(reports, "plot_training_curves", broken_plot)
    with pytest.raises(OSError, match="disk full"):
        reports.write_reports(tmp_path, **report_inputs(2))
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(after) == set(before)  # no staging files left behind
    assert json.loads(after["metrics.json"]) == {"run": 1}  # metrics.json is written last: still the old run's
    assert after["training_curves.png"] == before["training_curves.png"]
    assert len(pd.read_csv(tmp_path / "predictions.csv")) == 3  # replaced whole, never half-written
