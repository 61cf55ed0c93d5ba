"""Backends (ticket_router/backends.py): the ONNX one refuses graphs that are missing, changed or stale."""

import json
import shutil

import numpy as np
import pytest

from ticket_router.backends import OnnxBackend, TorchBackend
from ticket_router.encoding import TicketEncoder


def test_both_backends_give_the_same_logits(tiny_onnx):
    encoder = TicketEncoder(tiny_onnx, 64)
    batch = encoder.pad(encoder.encode(["VPN drops", "", "printer"], ["every hour", "mail bounced", ""]))
    torch_logits = TorchBackend(tiny_onnx).logits(batch)
    onnx_logits = OnnxBackend(tiny_onnx).logits(batch)
    assert torch_logits.shape == (3, 12)
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-4)


def test_a_missing_export_says_how_to_make_one(tiny_run, tmp_path):
    with pytest.raises(ValueError, match="no ONNX export; run `ticket-classifier export-onnx"):
        OnnxBackend(tiny_run[0] / "model", onnx_dir=tmp_path / "nothing")


def test_a_changed_graph_or_a_stale_export_is_refused(tiny_onnx, tmp_path):
    onnx_dir = tmp_path / "onnx"
    shutil.copytree(tiny_onnx / "onnx", onnx_dir)
    graph = onnx_dir / "model.onnx"
    graph.write_bytes(graph.read_bytes()[:-5])
    with pytest.raises(ValueError, match="does not match onnx_manifest.json"):
        OnnxBackend(tiny_onnx, onnx_dir=onnx_dir)
    shutil.copy(tiny_onnx / "onnx" / "model.onnx", graph)
    manifest = json.loads((onnx_dir / "onnx_manifest.json").read_text())
    (onnx_dir / "onnx_manifest.json").write_text(json.dumps({**manifest, "model_manifest_sha256": "0" * 64}))
    with pytest.raises(ValueError, match="exported from another version"):
        OnnxBackend(tiny_onnx, onnx_dir=onnx_dir)
    (onnx_dir / "onnx_manifest.json").write_text(json.dumps({**manifest, "file": "../model.safetensors"}))
    with pytest.raises(ValueError, match="'file' must name a file in"):
        OnnxBackend(tiny_onnx, onnx_dir=onnx_dir)
