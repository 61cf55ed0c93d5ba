"""ONNX export (custom_trainer/onnx_export.py): the ONNX Runtime backend agrees with PyTorch, fp32 and int8."""

import json

import numpy as np
import pandas as pd
import pytest

from custom_trainer.onnx_export import INT8_QUANTIZATION, export_onnx
from ticket_router.router import Router


@pytest.fixture(scope="module")
def test_tickets(tiny_run):
    return pd.read_csv(tiny_run[0] / "reports" / "predictions.csv")


@pytest.mark.parametrize("quantize, max_diff, min_agreement", [(None, 1e-4, 1.0), ("int8", 0.05, 0.995)])
def test_onnx_matches_pytorch(tiny_run, tmp_path, test_tickets, quantize, max_diff, min_agreement):
    model_dir = tiny_run[0] / "model"
    graph = export_onnx(model_dir, tmp_path / "onnx", quantize=quantize)
    assert graph.name == ("model.int8.onnx" if quantize else "model.onnx")
    # How the graph was quantised is recorded: 7-bit weights, which route alike on CPUs with and without VNNI.
    recorded = json.loads((tmp_path / "onnx" / "onnx_manifest.json").read_text())["quantization"]
    assert recorded == (INT8_QUANTIZATION if quantize else None)
    assert quantize is None or recorded["reduce_range"] is True
    torch_router = Router(model_dir)
    torch_probs = torch_router.predict_proba(test_tickets["subject"], test_tickets["description"])
    onnx_router = Router(model_dir, backend="onnx", onnx_dir=tmp_path / "onnx")
    onnx_probs = onnx_router.predict_proba(test_tickets["subject"], test_tickets["description"], batch_size=16)
    agreement = (torch_probs.argmax(-1) == onnx_probs.argmax(-1)).mean()
    assert agreement >= min_agreement
    assert np.abs(torch_probs - onnx_probs).max() <= max_diff
    assert onnx_router.labels == torch_router.labels and onnx_router.rule == torch_router.rule
    assert onnx_router.backend.quantization == recorded
    # The training run's own test predictions (the Hugging Face tokenizer and the model in PyTorch) agree too.
    assert (onnx_probs.argmax(-1) == test_tickets["predicted"].map(torch_router.labels.index)).mean() >= min_agreement
