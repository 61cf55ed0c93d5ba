"""The export (custom_trainer/export.py): atomic, with a manifest that verifies; the checks themselves are in
tests/test_router_manifest.py."""

from pathlib import Path

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


def versions(folder):
    """The versions beside the link (its lock and leases are dot-files)."""
    return sorted(p.name for p in (folder / ".model-versions").iterdir() if not p.name.startswith("."))


def test_failure_mid_export_keeps_the_previous_model(parts, tmp_path, monkeypatch):
    target = tmp_path / "model"
    export(parts, target, "first")
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    kept = versions(tmp_path)
    model, tokenizer = parts

    def crash(*args, **kwargs):
        raise OSError("disk full (injected)")

    monkeypatch.setattr(type(tokenizer), "save_pretrained", crash)  # the model is written, the tokenizer fails
    with pytest.raises(OSError, match="injected"):
        export(parts, target, "second")
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert verify_export(target)["data_fingerprint"] == "first"
    assert versions(tmp_path) == kept  # no partial version left
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model-versions", "model"]


def test_a_crash_at_the_switch_leaves_the_previous_model_loadable(parts, tmp_path, monkeypatch):
    import os

    target = tmp_path / "model"
    export(parts, target, "first")
    real_replace = os.replace

    def crash_on_switch(src, dst):
        if Path(dst) == target:
            raise OSError("power cut (injected)")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_switch)
    with pytest.raises(OSError, match="power cut"):
        export(parts, target, "second")
    monkeypatch.setattr(os, "replace", real_replace)
    assert verify_export(target)["data_fingerprint"] == "first"  # the pointer still names the complete old version
    export(parts, target, "third")  # and the next export cleans up after the crash
    assert verify_export(target)["data_fingerprint"] == "third"
    assert len(versions(tmp_path)) == 2 and not [p for p in tmp_path.iterdir() if ".link-" in p.name]


def test_failure_on_first_export_leaves_nothing(parts, tmp_path, monkeypatch):
    monkeypatch.setattr(type(parts[1]), "save_pretrained", lambda *a, **k: (_ for _ in ()).throw(OSError("boom")))
    with pytest.raises(OSError):
        export(parts, tmp_path / "model")
    assert not (tmp_path / "model").exists() and versions(tmp_path) == []


def test_a_new_export_replaces_the_old_one_and_two_versions_are_kept(parts, tmp_path):
    for tag in ("first", "second", "third"):
        export(parts, tmp_path / "model", tag)
    assert verify_export(tmp_path / "model")["data_fingerprint"] == "third"
    assert (tmp_path / "model").is_symlink() and len(versions(tmp_path)) == 2
    previous = [v for v in versions(tmp_path) if (tmp_path / ".model-versions" / v) != (tmp_path / "model").resolve()]
    assert verify_export(tmp_path / ".model-versions" / previous[0])["data_fingerprint"] == "second"


def test_an_export_of_an_older_release_is_kept_as_a_version(parts, tmp_path):
    import shutil

    export(parts, tmp_path / "new", "old-layout")
    shutil.copytree(tmp_path / "new", tmp_path / "model")  # a plain folder, as releases before versions wrote it
    export(parts, tmp_path / "model", "second")
    assert (tmp_path / "model").is_symlink() and verify_export(tmp_path / "model")["data_fingerprint"] == "second"
    assert any(v.startswith("before-") for v in versions(tmp_path))


def test_the_card_recipe_says_whether_the_model_was_fine_tuned_after_the_stage():
    from types import SimpleNamespace

    from custom_trainer.export import recipe_text

    args = SimpleNamespace(head_probe_epochs=20.0, num_train_epochs=3.0, seed=7, learning_rate=1e-4,
                           head_learning_rate=None, weight_decay=0.01, per_device_train_batch_size=32,
                           gradient_accumulation_steps=1, one_cycle=True, lr_scheduler_type="linear", max_grad_norm=1.0,
                           early_stopping_patience=2, load_best_model_at_end=True)
    stage = {"epochs": 8.0, "learning_rate": 5e-05, "batch_size": 32}
    fine_tuned = recipe_text(args, None)
    assert "frozen sentence vectors (20 passes), then lr 0.0001" in fine_tuned and "up to 3.0 epochs" in fine_tuned
    assert recipe_text(args, stage).startswith("a contrastive sentence-pair stage (8 passes, lr 5e-05, batches of 32)")
    args.num_train_epochs = 0
    setfit = recipe_text(args, stage)
    assert setfit.endswith("(20 passes); no fine-tuning after it (SetFit's recipe), seed 7.")
    assert "epochs" not in setfit and "SetFit" not in recipe_text(args, None)


def test_the_card_recipe_says_early_stopping_only_where_validation_chose_the_epoch():
    from types import SimpleNamespace

    from custom_trainer.export import recipe_text

    args = SimpleNamespace(head_probe_epochs=0, num_train_epochs=3.0, seed=7, learning_rate=1e-4,
                           head_learning_rate=None, weight_decay=0.01, per_device_train_batch_size=32,
                           gradient_accumulation_steps=1, one_cycle=True, lr_scheduler_type="linear", max_grad_norm=1.0,
                           early_stopping_patience=2, load_best_model_at_end=True)
    assert "early stopping on validation macro-F1 (patience 2)" in recipe_text(args, None)
    args.load_best_model_at_end = False  # what train.py's choose_checkpoint sets under 200 validation tickets
    last = recipe_text(args, None)
    assert "early stopping" not in last and "the last epoch kept (no epoch chosen on validation)" in last
