"""API keys for the service: `ticket-classifier keys create|list|revoke --keys FILE`, and their check per request.

A token is ``tck_<key id>_<secret>``: 12 hex characters of key id, then 43 URL-safe characters (256 random bits).
The keys file (JSON, written atomically, readable by its owner only) keeps the key id, the name, the scopes, the
dates and the SHA-256 of the whole token, never the token: a stolen file routes nothing. A request's token is found
by its key id and checked by comparing hashes in constant time (`hmac.compare_digest`): one SHA-256 of 60 bytes, a
microsecond, so a check costs nothing next to scoring. A slow hash (bcrypt) would protect short passwords; 256
random bits need no stretching.

Scopes say what a key may do: ``route`` (score and route tickets: /predict, /explain, /similar, the page and its
files), ``feedback`` (send final queues back and administer: /feedback), ``metrics`` (scrape /metrics). A key made
without ``--scopes`` has every scope; ``--scopes metrics`` makes a scraper's key that cannot route.

The service reads the file again when it changes (checked at most once a second), so `keys revoke` takes effect on a
running service without a restart. numpy-free, FastAPI-free: the slim install manages keys.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

SCOPES = ("route", "feedback", "metrics")
TOKEN_PREFIX = "tck"
TOKEN_PATTERN = re.compile(r"^tck_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
FORMAT = "ticket-classifier keys"
RELOAD_EVERY_S = 1.0


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Key:
    id: str
    name: str
    scopes: tuple[str, ...]
    sha256: str
    created: str
    revoked: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None

    def record(self) -> dict:
        return {"id": self.id, "name": self.name, "scopes": list(self.scopes), "sha256": self.sha256,
                "created": self.created, "revoked": self.revoked}


def check_scopes(scopes) -> tuple[str, ...]:
    """``scopes`` as a tuple in SCOPES' order; every scope when None or empty."""
    if not scopes:
        return SCOPES
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {unknown}; the scopes are {list(SCOPES)}")
    return tuple(scope for scope in SCOPES if scope in set(scopes))


def read_keys(path: str | Path) -> list[Key]:
    """The keys of ``path``; a clear error naming the file and the field when it is not a keys file."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"--keys {path}: file not found; make one with `ticket-classifier keys create --keys "
                         f"{path} --name NAME`") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"--keys {path}: not a keys file ({error})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT or not isinstance(document.get("keys"), list):
        raise ValueError(f"--keys {path}: not a keys file (expected {{\"format\": \"{FORMAT}\", \"keys\": [...]}})")
    keys = []
    for number, entry in enumerate(document["keys"]):
        where = f"--keys {path}: keys[{number}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object, got {type(entry).__name__}")
        for name in ("id", "name", "sha256", "created"):
            if not isinstance(entry.get(name), str):
                raise ValueError(f"{where}: field {name!r} must be a string, got {entry.get(name)!r}")
        if not re.fullmatch(r"[0-9a-f]{12}", entry["id"]) or not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]):
            raise ValueError(f"{where}: 'id' must be 12 and 'sha256' 64 hex characters")
        if not isinstance(entry.get("scopes"), list):
            raise ValueError(f"{where}: field 'scopes' must be a list, got {entry.get('scopes')!r}")
        try:
            scopes = check_scopes(entry["scopes"]) if entry["scopes"] else ()
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
        revoked = entry.get("revoked")
        if revoked is not None and not isinstance(revoked, str):
            raise ValueError(f"{where}: field 'revoked' must be a date or null, got {revoked!r}")
        keys.append(Key(entry["id"], entry["name"], scopes, entry["sha256"], entry["created"], revoked))
    return keys


def write_keys(path: str | Path, keys: list[Key]) -> None:
    """Write the keys file atomically, readable and writable by its owner only."""
    from ..atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as partial:
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump({"format": FORMAT, "keys": [key.record() for key in keys]}, handle, indent=2)
            handle.write("\n")


@contextmanager
def locked(path: str | Path):
    """An exclusive lock on ``path``'s lock file (beside it) while the file is read, changed and written: two `keys`
    commands at once never lose a key."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def create_key(path: str | Path, name: str, scopes=None) -> tuple[Key, str]:
    """A new key in ``path`` (made when missing): the stored record and the token, which nothing keeps."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError("--name must not be empty: say whose key it is (e.g. the desk or the scraper)")
    scopes = check_scopes(scopes)
    path = Path(path)
    with locked(path):
        keys = read_keys(path) if path.exists() else []
        key_id = secrets.token_hex(6)
        while any(key.id == key_id for key in keys):
            key_id = secrets.token_hex(6)
        token = f"{TOKEN_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        key = Key(key_id, name.strip(), scopes, token_hash(token), now())
        write_keys(path, [*keys, key])
    return key, token


def revoke_key(path: str | Path, which: str) -> Key:
    """Revoke the key whose id or name is ``which`` (a name must be unique among the active keys)."""
    path = Path(path)
    with locked(path):
        keys = read_keys(path)
        matches = [key for key in keys if key.id == which] or [key for key in keys if key.name == which and key.active]
        if not matches:
            raise ValueError(f"--keys {path}: no active key with id or name {which!r}")
        if len(matches) > 1:
            raise ValueError(f"--keys {path}: {len(matches)} active keys are named {which!r}; revoke by id "
                             f"({', '.join(key.id for key in matches)})")
        target = matches[0]
        if not target.active:
            raise ValueError(f"--keys {path}: key {target.id} ({target.name}) was revoked on {target.revoked}")
        revoked = Key(target.id, target.name, target.scopes, target.sha256, target.created, now())
        write_keys(path, [revoked if key.id == target.id else key for key in keys])
    return revoked


class KeyStore:
    """The keys of a file, for checking requests: re-read when the file changes (at most once a second)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp = None
        self._checked = 0.0
        self._keys: dict[str, Key] = {}
        self._load()
        if not any(key.active for key in self._keys.values()):
            raise ValueError(f"--keys {self.path}: no active key; make one with `ticket-classifier keys create "
                             f"--keys {self.path} --name NAME`")

    def _file_stamp(self):
        stat = self.path.stat()
        return stat.st_mtime_ns, stat.st_size, stat.st_ino

    def _load(self) -> None:
        try:
            stamp = self._file_stamp()  # before reading: a change made meanwhile is seen at the next check
        except FileNotFoundError:
            stamp = None  # read_keys says so, clearly
        keys = read_keys(self.path)
        self._keys, self._stamp = {key.id: key for key in keys}, stamp

    def _refresh(self) -> None:
        moment = time.monotonic()
        if moment - self._checked < RELOAD_EVERY_S:
            return
        with self._lock:
            if moment - self._checked < RELOAD_EVERY_S:
                return
            self._checked = moment
            try:
                if self._file_stamp() != self._stamp:
                    self._load()
            except (OSError, ValueError):
                # A file being replaced, or broken by hand: keep the keys last read rather than lock everyone out
                # (or let everyone in); the next check reads it again.
                pass

    def verify(self, token: str | None) -> Key | None:
        """The active key whose token this is, or None."""
        self._refresh()
        found = TOKEN_PATTERN.match(token or "")
        key = self._keys.get(found.group(1)) if found else None
        # Compare a hash even when the key id is unknown: the answer takes as long whichever part was wrong.
        matched = hmac.compare_digest(token_hash(token or ""), key.sha256 if key else "0" * 64)
        return key if (matched and key is not None and key.active) else None


def keys_main(args) -> int:
    """`ticket-classifier keys create|list|revoke` (ticket_router/cli.py parses the arguments)."""
    if args.action == "create":
        key, token = create_key(args.keys, args.name, args.scopes)
        print(f"created key {key.id} ({key.name}; scopes: {', '.join(key.scopes)}) in {args.keys}")
        print("the file keeps only a hash of the token: copy it now, it is not shown again")
        print(f"token: {token}")
        return 0
    if args.action == "list":
        keys = read_keys(args.keys)
        if not keys:
            print(f"{args.keys}: no keys")
        for key in keys:
            state = f"revoked {key.revoked}" if key.revoked else "active"
            print(f"{key.id}  {key.name}  scopes: {','.join(key.scopes)}  created {key.created}  {state}")
        return 0
    key = revoke_key(args.keys, args.key)
    print(f"revoked key {key.id} ({key.name}) on {key.revoked}; a running service refuses it within a second")
    return 0


def add_keys_command(commands) -> None:
    """The `keys` command and its actions, on the CLI's subparsers."""
    keys = commands.add_parser("keys", help="API keys for `serve --keys`: create (prints the token once), list, revoke")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a key; prints its token once, as the last word of the last line")
    create.add_argument("--keys", required=True, help="the keys file (made when missing; keeps hashes, never tokens)")
    create.add_argument("--name", required=True, help="whose key it is, e.g. the desk's name or 'prometheus'")
    create.add_argument("--scopes", nargs="+", choices=SCOPES, default=None,
                        help="what the key may do (default: every scope): route (score and route tickets), "
                        "feedback (send final queues back), metrics (scrape /metrics)")
    listing = actions.add_parser("list", help="the keys of a file: id, name, scopes, dates (never the tokens)")
    listing.add_argument("--keys", required=True, help="the keys file")
    revoke = actions.add_parser("revoke", help="revoke a key by id or name; a running service refuses it within 1 s")
    revoke.add_argument("--keys", required=True, help="the keys file")
    revoke.add_argument("key", help="the key's id (from `keys list`) or its name")
    for parser in (create, listing, revoke):
        parser.set_defaults(func=keys_main)
