"""What an exported model folder must hold, checked before a router loads it.

``manifest.json`` (written by custom_trainer/export.py) records the labels, the encoder, the data fingerprint, the
metrics, the library versions and a sha256 of every file. `verify_export` refuses a folder whose files do not match:
it catches truncated copies, partial uploads and edits by mistake. It is not a signature: anyone who can write the
folder can rewrite the manifest too.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .rule import label_names

MANIFEST = "manifest.json"


def sha256_of(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_json(path: Path, what: str) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: missing ({what})") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise ValueError(f"{path}: unreadable {what}: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: {what} must be a JSON object, got {type(value).__name__}")
    return value


def verify_export(folder: str | Path) -> dict:
    """Check an exported folder against its manifest; return the manifest. A mismatch is a ValueError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such model folder")
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ValueError(f"{folder}: no {MANIFEST}; not a complete export of this project")
    manifest = read_json(manifest_path, "manifest")
    for name, expected in manifest.get("files", {}).items():
        path = folder / name
        if not path.is_file():
            raise ValueError(f"{folder}: {name} is listed in {MANIFEST} but missing")
        if sha256_of(path) != expected:
            raise ValueError(f"{folder}: {name} does not match its checksum in {MANIFEST} (changed or truncated)")
    labels = label_names(read_json(folder / "config.json", "model config"))
    if labels != manifest.get("labels"):
        raise ValueError(f"{folder}: config.json labels {labels} differ from {MANIFEST} labels {manifest.get('labels')}")
    return manifest
