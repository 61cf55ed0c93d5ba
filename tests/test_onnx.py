"""ONNX export and ONNX Runtime parity with PyTorch."""

import numpy as np
import pandas as pd
import pytest

from custom_trainer.onnx_export import OnnxRouter, export_onnx
from custom_trainer.predict import TicketRouter


@pytest.fixture(scope="module")
def test_tickets(tiny_run):
    return pd.read_csv(tiny_run[0] / "reports" / "predictions.csv")


@pytest.mark.parametrize("quantize, max_diff, min_agreement", [(None, 1e-4, 1.0), ("int8", 0.05, 0.995)])
def test_onnx_matches_pytorch(tiny_run, tmp_path, test_tickets, quantize, max_diff, min_agreement):
    model_dir = tiny_run[0] / "model"
    graph = export_onnx(model_dir, tmp_path / "onnx", quantize=quantize)
    assert graph.name == ("model.int8.onnx" if quantize else "model.onnx")
    torch_probs = TicketRouter(model_dir).predict_proba(test_tickets["subject"], test_tickets["description"])
    onnx_router = OnnxRouter(model_dir, onnx_dir=tmp_path / "onnx")
    onnx_probs = onnx_router.predict_proba(test_tickets["subject"], test_tickets["description"], batch_size=16)
    agreement = (torch_probs.argmax(-1) == onnx_probs.argmax(-1)).mean()
    assert agreement >= min_agreement
    assert np.abs(torch_probs - onnx_probs).max() <= max_diff
    assert onnx_router.labels == TicketRouter(model_dir).labels


def test_onnx_router_refuses_a_stale_or_missing_export(tiny_run, tmp_path):
    model_dir = tiny_run[0] / "model"
    with pytest.raises(ValueError, match="no ONNX export"):
        OnnxRouter(model_dir, onnx_dir=tmp_path / "nothing")
    export_onnx(model_dir, tmp_path / "onnx")
    (tmp_path / "onnx" / "model.onnx").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="does not match onnx_manifest.json"):
        OnnxRouter(model_dir, onnx_dir=tmp_path / "onnx")
