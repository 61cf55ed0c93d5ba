"""The README's main job on the embedded encoder, then routing with its export (minutes): `pytest -m slow`."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO


@pytest.fixture(scope="module")
def main_job(tmp_path_factory):
    out = tmp_path_factory.mktemp("main_job") / "cpu"
    result = subprocess.run(
        [sys.executable, "train.py", "--output_dir", str(out), "--disable_tqdm", "true"],
        cwd=REPO, capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.slow
def test_default_main_job_reaches_target_and_exports(main_job):
    metrics = json.loads((main_job / "reports" / "metrics.json").read_text())
    assert metrics["test"]["macro_f1"] >= 0.99
    for name in ("model/model.safetensors", "model/manifest.json", "reports/predictions.csv", "reports/routing_curve.png",
                 "reports/confusion_matrix.png", "reports/training_curves.png", "reports/classification_report.txt"):
        assert (main_job / name).is_file(), name


@pytest.mark.slow
def test_cli_routes_and_onnx_int8_agrees_on_the_embedded_model(main_job, tmp_path):
    from ticket_router.cli import main as cli
    from ticket_router.router import Router

    model = str(main_job / "model")
    predictions = pd.read_csv(main_job / "reports" / "predictions.csv")
    predictions[["subject", "description"]].to_csv(tmp_path / "in.csv", index=False)
    assert cli(["predict", "--model", model, "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv")]) == 0
    routed = pd.read_csv(tmp_path / "out.csv")
    assert routed["predicted"].tolist() == predictions["predicted"].tolist()
    assert cli(["evaluate", "--model", model, "--input", str(main_job / "reports" / "predictions.csv"),
                "--label_column", "label"]) == 0
    assert cli(["export-onnx", "--model", model, "--quantize", "int8"]) == 0
    torch_probs = Router(model).predict_proba(predictions["subject"], predictions["description"])
    onnx_probs = Router(model, backend="onnx").predict_proba(predictions["subject"], predictions["description"])
    assert (torch_probs.argmax(-1) == onnx_probs.argmax(-1)).mean() >= 0.995
    assert np.abs(torch_probs - onnx_probs).max() <= 0.1
