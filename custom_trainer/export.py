"""Export the trained model for `pipeline("text-classification")`, atomically and with a manifest.

The folder is written beside its final place and renamed into it, so an export that fails half-way leaves
the previous model (or none), never a partial one. ``manifest.json`` records labels, encoder, data
fingerprint, metrics, library versions and a sha256 of every file; `verify_export` checks it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .encoders import sha256_of

MANIFEST = "manifest.json"


def library_versions() -> dict[str, str]:
    import datasets
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "datasets": datasets.__version__}


def export_model(model, tokenizer, target: str | Path, manifest: dict, model_card: str) -> Path:
    """Write model, tokenizer, model card and manifest to ``target`` (replacing an older export atomically)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "README.md").write_text(model_card)
        files = {
            path.relative_to(staging).as_posix(): sha256_of(path)
            for path in sorted(staging.rglob("*"))
            if path.is_file()
        }
        full_manifest = {
            **manifest,
            "labels": [model.config.id2label[i] for i in range(model.config.num_labels)],
            "library_versions": library_versions(),
            "files": files,
        }
        (staging / MANIFEST).write_text(json.dumps(full_manifest, indent=2) + "\n")
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _swap_into_place(staging: Path, target: Path) -> None:
    if not target.exists():
        os.replace(staging, target)
        return
    # Two renames: the window in which `target` is missing is tiny, and it never holds a partial folder.
    retired = target.parent / f".{target.name}.old-{os.getpid()}"
    shutil.rmtree(retired, ignore_errors=True)
    os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)


def verify_export(folder: str | Path) -> dict:
    """Check an exported folder against its manifest; return the manifest. A mismatch is a ValueError."""
    folder = Path(folder)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ValueError(f"{folder}: no {MANIFEST}; not a complete export of this project")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{manifest_path}: unreadable manifest: {error}") from None
    for name, expected in manifest.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            raise ValueError(f"{folder}: {name} is listed in {MANIFEST} but missing")
        if sha256_of(path) != expected:
            raise ValueError(f"{folder}: {name} does not match its checksum in {MANIFEST} (changed or truncated)")
    config = json.loads((folder / "config.json").read_text())
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    if labels != manifest.get("labels"):
        raise ValueError(f"{folder}: config.json labels {labels} differ from {MANIFEST} labels {manifest.get('labels')}")
    return manifest


def load_exported_model(folder: str | Path):
    """Verify an exported folder against its manifest, then load (model, tokenizer) for prediction."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import custom_trainer  # noqa: F401  (registers the model with the Auto classes)

    verify_export(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model, tokenizer
