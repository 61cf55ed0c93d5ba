"""The one way this project writes a file or folder that someone may be reading: beside it, then renamed into place.

An interrupted write (an exception, a crash, a full disk) never leaves a half-written file where the old one was;
the staging copy is removed on failure and fsynced before the rename on success.
"""

from __future__ import annotations

import contextlib
import os
import shutil
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


def write_text(target: str | Path, text: str) -> Path:
    """``target`` holds ``text`` completely, or keeps what it held before."""
    with atomic_path(target) as staging:
        staging.write_text(text, encoding="utf-8")
    return Path(target)
