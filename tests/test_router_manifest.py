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


def rewrite_manifest(export, **changes):
    manifest = json.loads((export / "manifest.json").read_text())
    manifest.update(changes)
    (export / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def test_a_hand_edited_routing_threshold_is_caught(export):
    config = json.loads((export / "config.json").read_text())
    config["auto_route_thresholds"] = {label: 0.0 for label in config["auto_route_thresholds"]}  # route everything
    (export / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"config\.json does not match its checksum"):
        verify_export(export)


@pytest.mark.parametrize("files, message", [
    (None, "no 'files' list"), ({}, "no 'files' list"), ("config.json", "no 'files' list"),
])
def test_a_manifest_without_its_file_list_is_refused(export, files, message):
    manifest = json.loads((export / "manifest.json").read_text())
    if files is None:
        manifest.pop("files")
    else:
        manifest["files"] = files
    (export / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=message):
        verify_export(export)


def test_config_must_be_listed_and_entries_must_stay_inside(export, tmp_path):
    manifest = json.loads((export / "manifest.json").read_text())
    files = dict(manifest["files"])
    files.pop("config.json")
    rewrite_manifest(export, files=files)
    with pytest.raises(ValueError, match="does not list config.json"):
        verify_export(export)
    (tmp_path / "outside.txt").write_text("x")
    for entry in ("../outside.txt", str(tmp_path / "outside.txt")):
        rewrite_manifest(export, files={**manifest["files"], entry: sha256_of(tmp_path / "outside.txt")})
        with pytest.raises(ValueError, match="is not a path inside the model folder"):
            verify_export(export)


def test_unlisted_files_are_refused_except_the_onnx_folder(export):
    (export / "onnx").mkdir()
    (export / "onnx" / "model.onnx").write_bytes(b"checked by onnx_manifest.json, not here")
    verify_export(export)
    (export / "extra_code.py").write_text("import os")
    with pytest.raises(ValueError, match=r"\['extra_code.py'\] are not in manifest.json"):
        verify_export(export)
