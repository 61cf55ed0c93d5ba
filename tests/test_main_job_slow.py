"""The README's main job on the embedded encoder (minutes on 2 cores): `pytest -m slow`."""

import json
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.slow
def test_default_main_job_reaches_target_and_exports(tmp_path):
    out = tmp_path / "cpu"
    result = subprocess.run(
        [sys.executable, "train.py", "--output_dir", str(out), "--disable_tqdm", "true"],
        cwd=REPO, capture_output=True, text=True, timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "reports" / "metrics.json").read_text())
    assert metrics["test"]["macro_f1"] >= 0.99
    for name in ("model/model.safetensors", "model/manifest.json", "reports/predictions.csv",
                 "reports/confusion_matrix.png", "reports/training_curves.png", "reports/classification_report.txt"):
        assert (out / name).is_file(), name
