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
KEEP_VERSIONS = 2  # the current one and the one before it (to roll back), besides any a service uses
LEASES = ".leases"  # in the versions folder: <version>@<host>-<pid>, touched by each service routing with it
LEASE_TTL_S = 180  # a lease not touched for this long is a service that stopped (services touch theirs every 10 s)
ANY = object()  # `versioned_folder(expected=ANY)`: switch whatever the link names now (a new training run)


def versions_folder(target: str | Path) -> Path:
    target = Path(target)
    return target.parent / VERSIONS.format(name=target.name)


def current_version(target: str | Path) -> str | None:
    """What ``target`` names now: the resolved path of the version (or of a plain folder); None when missing."""
    target = Path(target)
    return os.path.realpath(target) if (target.exists() or target.is_symlink()) else None


@contextlib.contextmanager
def link_lock(target: str | Path) -> Iterator[None]:
    """The lock every writer of ``target``'s link takes (train.py's export, calibrate, promote, rollback): one switch
    at a time, each checking that the link still names what the writer started from."""
    import fcntl

    folder = versions_folder(target)  # the lock file lives with the versions: nothing new beside the link
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def touch_lease(target: str | Path, version: str) -> None:
    """Say that this process routes with ``version`` of ``target`` (a service, every time it checks the link), so
    that no writer prunes it; this process's leases on other versions are removed. Nothing for a plain folder."""
    import socket

    target = Path(target)
    if not target.is_symlink():
        return
    folder = versions_folder(target) / LEASES
    mine = f"@{socket.gethostname()}-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{version}{mine}").touch()
        for other in folder.glob(f"*{mine}"):
            if other.name != f"{version}{mine}":
                other.unlink(missing_ok=True)
    except OSError:  # a read-only model store: nothing prunes it either
        pass


def leased_versions(target: str | Path) -> set[str]:
    """The versions a service touched a lease on within `LEASE_TTL_S`."""
    folder = versions_folder(target) / LEASES
    now = time.time()
    leased = set()
    for lease in folder.glob("*@*") if folder.is_dir() else ():
        try:
            if now - lease.stat().st_mtime < LEASE_TTL_S:
                leased.add(lease.name.split("@", 1)[0])
        except FileNotFoundError:
            continue
    return leased


def switch_link(target: str | Path, version_path: Path, expected=ANY) -> None:
    """Point ``target`` at ``version_path`` (a folder of its versions) by one rename, under `link_lock`; with
    ``expected`` (a `current_version` value), only if the link still names it (compare-and-swap), else ValueError."""
    target = Path(target)
    with link_lock(target):
        now = current_version(target)
        if expected is not ANY and now != expected:
            raise ValueError(f"{target} moved since this command started: it named {expected}, it now names {now}; "
                             "nothing was switched (run the command again on the version in use)")
        link = target.parent / f".{target.name}.link-{os.getpid()}"
        _remove(link)
        os.symlink(Path(version_path.parent.name) / version_path.name, link, target_is_directory=True)
        if target.is_dir() and not target.is_symlink():
            # An export written as a plain folder (before versioned folders, or copied with cp -rL): one last
            # two-rename swap, the old folder kept as a version.
            os.replace(target, version_path.parent / f"before-{version_path.name}")
        os.replace(link, target)
        _fsync(target.parent)
        prune_versions(target)


def prune_versions(target: str | Path) -> None:
    """Remove versions beyond the newest `KEEP_VERSIONS`, never the one ``target`` names nor one a service leases."""
    versions = versions_folder(target)
    keep = leased_versions(target) | {Path(current_version(target) or "").name}
    candidates = sorted((p for p in versions.iterdir() if not p.name.startswith(".")), key=lambda p: p.stat().st_mtime)
    for old in candidates[:-KEEP_VERSIONS]:
        if old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def versioned_folder(target: str | Path, expected=ANY) -> Iterator[Path]:
    """Yield an empty staging folder; when the block succeeds it becomes a new version beside ``target`` and
    ``target`` (a symbolic link) is switched to it by one rename, the layout of Triton and TorchServe model stores.

    ``expected``: the version (`current_version`) the writer started from; the switch happens only if the link still
    names it, under the lock every writer takes, and fails clearly otherwise (the staged version is removed): a
    re-certification never silently reverts a newer export. A crash at any point leaves ``target`` pointing at a
    complete version: the old one until the rename, the new one after it. Versions other than the last
    `KEEP_VERSIONS` are removed, except one a running service leases. Where symbolic links are not available, the
    folder is swapped in with `atomic_path` instead.
    """
    target = Path(target)
    versions = versions_folder(target)
    version = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6:06d}"
    with atomic_path(versions / version, directory=True) as staging:
        yield staging
    if not _symlinks_work(versions):  # no symbolic links here: swap the folder in
        with link_lock(target):
            if expected is not ANY and current_version(target) != expected:
                shutil.rmtree(versions / version, ignore_errors=True)
                raise ValueError(f"{target} changed since this command started; nothing was switched")
            with atomic_path(target, directory=True) as fallback:
                fallback.rmdir()
                shutil.copytree(versions / version, fallback)
        shutil.rmtree(versions / version, ignore_errors=True)
        return
    try:
        switch_link(target, versions / version, expected)
    except ValueError:
        shutil.rmtree(versions / version, ignore_errors=True)
        raise


def _symlinks_work(folder: Path) -> bool:
    probe = folder / f".symlink-probe-{os.getpid()}"
    try:
        _remove(probe)
        os.symlink(".", probe, target_is_directory=True)
        probe.unlink()
        return True
    except (OSError, NotImplementedError):
        return False


def previous_version(target: str | Path) -> Path | None:
    """The newest version older than the one ``target`` names (what `rollback` restores)."""
    versions = versions_folder(target)
    now = Path(current_version(target) or "")
    older = sorted((p for p in versions.iterdir() if not p.name.startswith(".") and p.is_dir() and p != now),
                   key=lambda p: p.stat().st_mtime) if versions.is_dir() else []
    older = [p for p in older if now.exists() and p.stat().st_mtime <= now.stat().st_mtime] or older
    return older[-1] if older else None


def write_text(target: str | Path, text: str) -> Path:
    """``target`` holds ``text`` completely, or keeps what it held before."""
    with atomic_path(target) as staging:
        staging.write_text(text, encoding="utf-8")
    return Path(target)
