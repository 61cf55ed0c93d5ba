"""The one way this project writes a file or folder that someone may be reading: beside it, then renamed into place.

An interrupted write (an exception, a crash, a full disk) never leaves a half-written file where the old one was;
the staging copy is removed on failure and fsynced before the rename on success.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() and hasattr(os, "O_DIRECTORY") else 0)
    try:
        descriptor = os.open(path, flags)
    except OSError:  # some filesystems cannot open folders; the rename is still atomic there
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _fsync_tree(path: Path) -> None:
    for item in sorted(path.rglob("*")) if path.is_dir() else ():
        _fsync(item)
    _fsync(path)


@contextlib.contextmanager
def atomic_path(target: str | Path, directory: bool = False) -> Iterator[Path]:
    """Yield a staging path beside ``target`` (an empty folder when ``directory``); when the block ends without an
    exception the staging file or folder replaces ``target``, otherwise it is removed and ``target`` is untouched.

    A folder that already exists is replaced by two renames (old one aside, new one in): readers see the old or
    the new folder, and only a crash between the two renames leaves it missing (the old one stays beside it).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    _remove(staging)
    if directory:
        staging.mkdir()
    try:
        yield staging
        _fsync_tree(staging)
        if directory and target.exists():
            retired = target.parent / f".{target.name}.old-{os.getpid()}"
            _remove(retired)
            os.replace(target, retired)
            os.replace(staging, target)
            _remove(retired)
        else:
            os.replace(staging, target)
        _fsync(target.parent)
    finally:
        _remove(staging)  # still there only when the block failed


VERSIONS = ".{name}-versions"  # beside the pointer: outputs/run/.model-versions/<version>/
KEEP_VERSIONS = 2  # the current one and the one before it (to roll back by hand)


@contextlib.contextmanager
def versioned_folder(target: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder; when the block succeeds it becomes a new version beside ``target`` and
    ``target`` (a symbolic link) is switched to it by one rename, the layout of Triton and TorchServe model stores.

    A crash at any point leaves ``target`` pointing at a complete version: the old one until the rename, the new one
    after it. Versions other than the last `KEEP_VERSIONS` are removed. Where symbolic links are not available, or
    ``target`` is a folder written by an older release, the folder is swapped in with `atomic_path` instead.
    """
    target = Path(target)
    versions = target.parent / VERSIONS.format(name=target.name)
    version = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6:06d}"
    with atomic_path(versions / version, directory=True) as staging:
        yield staging
    link = target.parent / f".{target.name}.link-{os.getpid()}"
    _remove(link)
    try:
        os.symlink(Path(versions.name) / version, link, target_is_directory=True)
    except (OSError, NotImplementedError):  # no symbolic links here: fall back to swapping the folder in
        with atomic_path(target, directory=True) as fallback:
            fallback.rmdir()
            shutil.copytree(versions / version, fallback)
        shutil.rmtree(versions / version, ignore_errors=True)
        return
    if target.is_dir() and not target.is_symlink():
        # An export written before versioned folders: one last two-rename swap, the old folder kept as a version.
        os.replace(target, versions / f"before-{version}")
    os.replace(link, target)
    _fsync(target.parent)
    for old in sorted((p for p in versions.iterdir() if not p.name.startswith(".")), key=lambda p: p.stat().st_mtime)[
            :-KEEP_VERSIONS]:
        if old.name != version:
            shutil.rmtree(old, ignore_errors=True)


def write_text(target: str | Path, text: str) -> Path:
    """``target`` holds ``text`` completely, or keeps what it held before."""
    with atomic_path(target) as staging:
        staging.write_text(text, encoding="utf-8")
    return Path(target)
