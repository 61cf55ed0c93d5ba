"""The export (custom_trainer/export.py): atomic, with a manifest that verifies; the checks themselves are in
tests/test_router_manifest.py."""

import pytest
import torch
from transformers import AutoTokenizer

from custom_trainer import TicketClassifier
from custom_trainer.export import export_model, load_exported_model, verify_export
from ticket_data import ticket_tokenizer

LABELS = {0: "Email", 1: "Network"}


@pytest.fixture()
def parts(tiny_bert):
    model = TicketClassifier.from_encoder(str(tiny_bert), LABELS).eval()
    return model, ticket_tokenizer(AutoTokenizer.from_pretrained(tiny_bert))


def export(parts, target, tag="first"):
    model, tokenizer = parts
    return export_model(model, tokenizer, target, {"data_fingerprint": tag}, f"# card {tag}\n")


def test_export_writes_a_verifiable_manifest(parts, tmp_path):
    folder = export(parts, tmp_path / "model")
    manifest = verify_export(folder)
    assert manifest["labels"] == ["Email", "Network"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "modeling.py"} <= set(manifest["files"])
    assert {"torch", "transformers", "datasets"} <= set(manifest["library_versions"])
    model, _ = load_exported_model(folder)
    ids = torch.tensor([[2, 40, 41, 3]])
    assert torch.allclose(model(input_ids=ids).logits, parts[0](input_ids=ids).logits)


def test_failure_mid_export_keeps_the_previous_model(parts, tmp_path, monkeypatch):
    target = tmp_path / "model"
    export(parts, target, "first")
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    model, tokenizer = parts

    def crash(*args, **kwargs):
        raise OSError("disk full (injected)")

    monkeypatch.setattr(type(tokenizer), "save_pretrained", crash)  # the model is written, the tokenizer fails
    with pytest.raises(OSError, match="injected"):
        export(parts, target, "second")
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert verify_export(target)["data_fingerprint"] == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no partial folder left beside it


def test_failure_on_first_export_leaves_nothing(parts, tmp_path, monkeypatch):
    monkeypatch.setattr(type(parts[1]), "save_pretrained", lambda *a, **k: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        export(parts, tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


def test_a_new_export_replaces_the_old_one(parts, tmp_path):
    export(parts, tmp_path / "model", "first")
    export(parts, tmp_path / "model", "second")
    assert verify_export(tmp_path / "model")["data_fingerprint"] == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
