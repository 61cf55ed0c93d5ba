"""The manifest check (ticket_router/manifest.py) on a real export, without transformers in the loop."""

import json
import shutil

import pytest

from ticket_router.manifest import read_json, sha256_of, verify_export


@pytest.fixture()
def export(tiny_run, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_run[0] / "model", folder, ignore=shutil.ignore_patterns("onnx"))
    return folder


def test_a_complete_export_verifies(export):
    manifest = verify_export(export)
    assert len(manifest["labels"]) == 12
    assert manifest["files"]["config.json"] == sha256_of(export / "config.json")


def test_truncated_missing_or_unlisted_manifest_is_refused(export):
    weights = export / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"model\.safetensors does not match its checksum"):
        verify_export(export)
    weights.unlink()
    with pytest.raises(ValueError, match=r"model\.safetensors is listed in manifest\.json but missing"):
        verify_export(export)
    (export / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable manifest"):
        verify_export(export)
    (export / "manifest.json").unlink()
    with pytest.raises(ValueError, match=r"no manifest\.json"):
        verify_export(export)


def test_labels_that_differ_from_the_manifest_are_refused(export):
    manifest = json.loads((export / "manifest.json").read_text())
    manifest["labels"] = manifest["labels"][::-1]
    (export / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="labels"):
        verify_export(export)


def test_read_json_names_the_file_and_what_it_is(tmp_path):
    (tmp_path / "c.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"c\.json: model config must be a JSON object"):
        read_json(tmp_path / "c.json", "model config")
    (tmp_path / "d.json").write_text("[" * 100_000)
    with pytest.raises(ValueError, match=r"d\.json: unreadable model config"):
        read_json(tmp_path / "d.json", "model config")
