"""What an exported model folder must hold, checked before a router loads it.

``manifest.json`` (written by custom_trainer/export.py) records the labels, the encoder, the data fingerprint, the
metrics, the library versions and a sha256 of every file. `verify_export` refuses a folder whose files do not match:
it catches truncated copies, partial uploads, files added or edited by mistake (a hand-edited threshold in config.json
included). It is not a signature: anyone who can write the folder can rewrite the manifest too; protect the folder
with file permissions, or sign it with your own tooling.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .rule import label_names

MANIFEST = "manifest.json"
REQUIRED_FILES = ("config.json",)
ONNX_FOLDER = "onnx"  # written after the export, checked by its own onnx_manifest.json


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
    """Check an exported folder against its manifest; return the manifest. A mismatch is a ValueError.

    Strict: the manifest must list files, config.json among them (the labels, temperature and routing thresholds are
    in it, so they are covered by its checksum); every listed file must be inside the folder and match its sha256;
    and every file in the folder must be listed, except under ``onnx/``, which `OnnxBackend` checks against its own
    manifest (tied to this one).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such model folder")
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ValueError(f"{folder}: no {MANIFEST}; not a complete export of this project")
    manifest = read_json(manifest_path, "manifest")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ValueError(f"{manifest_path}: no 'files' list; the folder cannot be checked (export it again)")
    for required in REQUIRED_FILES:
        if required not in files:
            raise ValueError(f"{manifest_path}: does not list {required}; the folder cannot be checked (export it again)")
    for name, expected in files.items():
        parts = Path(name).parts
        if not isinstance(name, str) or Path(name).is_absolute() or ".." in parts or "\\" in name or not parts:
            raise ValueError(f"{manifest_path}: entry {name!r} is not a path inside the model folder")
        path = folder / name
        if not path.is_file():
            raise ValueError(f"{folder}: {name} is listed in {MANIFEST} but missing")
        if sha256_of(path) != expected:
            raise ValueError(f"{folder}: {name} does not match its checksum in {MANIFEST} (changed or truncated)")
    unlisted = sorted(
        path.relative_to(folder).as_posix() for path in folder.rglob("*")
        if (path.is_file() or path.is_symlink()) and path != manifest_path
        and path.relative_to(folder).parts[0] != ONNX_FOLDER and path.relative_to(folder).as_posix() not in files
    )
    if unlisted:
        raise ValueError(f"{folder}: file(s) {unlisted[:10]} are not in {MANIFEST}; remove them or export again")
    labels = label_names(read_json(folder / "config.json", "model config"))
    if labels != manifest.get("labels"):
        raise ValueError(f"{folder}: config.json labels {labels} differ from {MANIFEST} labels {manifest.get('labels')}")
    return manifest
