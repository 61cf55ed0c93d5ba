"""The slim install (`pip install .`, no extras) routes with an ONNX export made by the full install.

Needs a second virtual environment holding only `pip install .`; .ci/run builds it and points TICKET_SLIM_PYTHON at its
python. Locally:

    python3 -m venv .venv-slim && .venv-slim/bin/pip install . && TICKET_SLIM_PYTHON=.venv-slim/bin/python python -m pytest tests/test_router_slim_install.py
"""

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from ticket_router.router import Router

SLIM = os.environ.get("TICKET_SLIM_PYTHON")
pytestmark = [
    pytest.mark.process,
    pytest.mark.skipif(not SLIM, reason="no slim environment: set TICKET_SLIM_PYTHON to a venv with only `pip install .`"),
]


def slim(*args, cwd):
    # Run outside the checkout, so the slim venv's installed copy is imported, not the working tree's packages.
    return subprocess.run([str(Path(SLIM).absolute()), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_torch_and_transformers_are_not_installed(tmp_path):
    for module in ("torch", "transformers", "datasets", "sklearn"):
        result = slim("-c", f"import {module}", cwd=tmp_path)
        assert result.returncode != 0 and "No module named" in result.stderr, module


def test_the_slim_router_routes_a_file_as_the_full_install_does(tiny_onnx, tmp_path):
    tickets = pd.read_csv(tiny_onnx.parent / "reports" / "predictions.csv", keep_default_na=False)
    tickets[["subject", "description"]].to_csv(tmp_path / "in.csv", index=False)
    result = slim("-m", "ticket_router.cli", "predict", "--onnx", "--model", str(tiny_onnx), "--input",
                  str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv"), "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    routed = pd.read_csv(tmp_path / "out.csv")
    full = Router(tiny_onnx, backend="onnx").route(tickets["subject"].tolist(), tickets["description"].tolist())
    assert routed["predicted"].tolist() == [d["label"] for d in full]
    assert routed["route"].tolist() == [d["route"] for d in full]
    assert routed["score"].tolist() == pytest.approx([d["score"] for d in full], abs=1e-5)


def test_one_ticket_from_the_shell_and_a_clear_error_for_the_torch_backend(tiny_onnx, tmp_path):
    result = slim("-m", "ticket_router.cli", "predict", "--onnx", "--model", str(tiny_onnx), "--subject", "VPN drops",
                  "--description", "every hour", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("1. ") and "route: " in result.stdout
    result = slim("-m", "ticket_router.cli", "predict", "--model", str(tiny_onnx), "--subject", "VPN", cwd=tmp_path)
    assert result.returncode == 2 and "needs the train extra" in result.stderr and "add --onnx" in result.stderr
    result = slim("-m", "ticket_router.cli", "export-onnx", "--model", str(tiny_onnx), cwd=tmp_path)
    assert result.returncode == 2 and "needs the train extra" in result.stderr
    result = slim("-m", "ticket_router.cli", "predict", "--onnx", "--model", str(tiny_onnx), "--input",
                  str(tmp_path / "missing.csv"), "--output", str(tmp_path / "out.parquet"), cwd=tmp_path)
    assert result.returncode == 2 and "writing Parquet needs pyarrow" in result.stderr  # before any work


def test_the_slim_install_searches_the_similar_ticket_index(tiny_onnx, tmp_path):
    code = ("from ticket_router.router import Router; import sys; "
            f"r = Router({str(tiny_onnx)!r}, backend='onnx'); "
            "found = r.similar_tickets(['printer jam'], ['tray two'], 3)[0]; "
            "print(len(found), found[0]['label'] in r.labels, 'torch' in sys.modules)")
    result = slim("-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3", "True", "False"]


def test_the_slim_install_recalibrates_an_onnx_export(tiny_onnx, tmp_path):
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_onnx.parent, run, symlinks=True)
    tickets = pd.read_csv(run / "reports" / "predictions.csv", keep_default_na=False)
    tickets[["subject", "description", "label"]].to_csv(tmp_path / "labelled.csv", index=False)
    before = (run / "model").resolve()
    result = slim("-m", "ticket_router.cli", "calibrate", "--onnx", "--model", str(run / "model"), "--input",
                  str(tmp_path / "labelled.csv"), "--label_column", "label", "--max_misrouting", "0.5", "--quiet",
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    after = (run / "model").resolve()
    assert after != before and "written: a new version" in result.stdout
    guarantee = json.loads((after / "config.json").read_text())["routing_guarantee"]
    assert guarantee["max_misrouting"] == 0.5 and "labelled.csv" in guarantee["certified_on"]
    # The ONNX graph stays tied to the new version, and both backends read the new rule.
    assert Router(run / "model", backend="onnx").rule == Router(run / "model").rule


def test_the_slim_install_routes_every_field_of_a_multi_field_export(fields_run, tmp_path):
    import shutil

    from custom_trainer.onnx_export import export_onnx

    run, _, tickets = fields_run
    model = tmp_path / "model"
    shutil.copytree(run / "model", model, symlinks=True)
    export_onnx(model, quantize="int8")  # made by the full install, routed by the slim one
    sample = tickets.sample(30, random_state=2)
    sample[["subject", "description"]].to_csv(tmp_path / "in.csv", index=False)
    result = slim("-m", "ticket_router.cli", "predict", "--onnx", "--model", str(model), "--input",
                  str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv"), "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    routed = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    router = Router(model, backend="onnx")
    full = router.score(sample["subject"].tolist(), sample["description"].tolist())
    assert [field["name"] for field in router.fields] == ["priority", "type"]
    for field in router.fields:
        name, probabilities = field["name"], full.fields[field["name"]]
        assert routed[f"predicted_{name}"].tolist() == [field["labels"][i] for i in probabilities.argmax(1)]
        assert routed[f"score_{name}"].tolist() == pytest.approx(probabilities.max(1).tolist(), abs=1e-5)
