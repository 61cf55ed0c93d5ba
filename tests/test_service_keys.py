"""API keys (ticket_router/service/keys.py): the token printed once and never stored, scopes, revocation, a keys file
that two commands change at once, and the check a request's token gets."""

import json
import os
import stat
import threading

import pytest

from ticket_router.cli import main
from ticket_router.service import keys as keys_module
from ticket_router.service.keys import KeyStore, create_key, read_keys, revoke_key, token_hash


def created_token(capsys, *argv) -> str:
    assert main(["keys", "create", *argv]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    return lines[-1].split()[-1]  # the contract: the last word of the last line


def test_create_prints_the_token_once_and_the_file_keeps_only_its_hash(tmp_path, capsys):
    path = tmp_path / "keys.json"
    token = created_token(capsys, "--keys", str(path), "--name", "desk")
    assert keys_module.TOKEN_PATTERN.match(token)
    text = path.read_text()
    assert token not in text and token.split("_", 2)[2] not in text  # neither the token nor its secret part
    (key,) = read_keys(path)
    assert key.sha256 == token_hash(token) and key.name == "desk" and key.scopes == ("route", "feedback", "metrics")
    assert key.created and key.revoked is None
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert KeyStore(path).verify(token) == key


def test_scopes_make_a_scrapers_key_and_unknown_scopes_are_refused(tmp_path, capsys):
    path = tmp_path / "keys.json"
    token = created_token(capsys, "--keys", str(path), "--name", "prometheus", "--scopes", "metrics")
    assert KeyStore(path).verify(token).scopes == ("metrics",)
    with pytest.raises(ValueError, match=r"unknown scope\(s\) \['admin'\]"):
        create_key(path, "x", ["admin"])
    with pytest.raises(ValueError, match="--name must not be empty"):
        create_key(path, "  ")


def test_a_token_is_accepted_only_whole_and_while_active(tmp_path, monkeypatch):
    monkeypatch.setattr(keys_module, "RELOAD_EVERY_S", 0.0)
    path = tmp_path / "keys.json"
    key, token = create_key(path, "desk")
    _, other = create_key(path, "desk")
    store = KeyStore(path)
    assert store.verify(token).id == key.id
    prefix, key_id, secret = token.split("_", 2)
    wrong_secret = f"{prefix}_{key_id}_{'A' * len(secret)}"
    unknown_id = f"{prefix}_{'0' * 12}_{secret}"
    others_secret = f"{prefix}_{key_id}_{other.split('_', 2)[2]}"
    for bad in (wrong_secret, unknown_id, token[:-1], token + "x", "", None, others_secret):
        assert store.verify(bad) is None, bad
    with pytest.raises(ValueError, match="2 active keys are named 'desk'; revoke by id"):
        revoke_key(path, "desk")
    revoke_key(path, key.id)
    assert store.verify(token) is None  # the running store reads the changed file
    assert store.verify(other) is not None
    with pytest.raises(ValueError, match="no active key with id or name"):
        revoke_key(path, "nobody")


def test_list_and_revoke_from_the_command_line(tmp_path, capsys):
    path = tmp_path / "keys.json"
    token = created_token(capsys, "--keys", str(path), "--name", "desk")
    assert main(["keys", "list", "--keys", str(path)]) == 0
    listing = capsys.readouterr().out
    assert "desk" in listing and "active" in listing and token not in listing
    assert main(["keys", "revoke", "--keys", str(path), "desk"]) == 0
    assert "revoked key" in capsys.readouterr().out
    assert main(["keys", "list", "--keys", str(path)]) == 0
    assert "revoked 20" in capsys.readouterr().out


def test_keys_made_at_once_are_all_kept(tmp_path):
    path = tmp_path / "keys.json"
    threads = [threading.Thread(target=create_key, args=(path, f"desk {i}")) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(key.name for key in read_keys(path)) == sorted(f"desk {i}" for i in range(8))


@pytest.mark.parametrize("content, message", [
    ("not json", "not a keys file"),
    (json.dumps({"keys": []}), "not a keys file"),
    (json.dumps({"format": keys_module.FORMAT, "keys": [{"id": "abc"}]}), r"keys\[0\]: field 'name' must be a string"),
    (json.dumps({"format": keys_module.FORMAT, "keys": [{"id": "a" * 12, "name": "d", "sha256": "b" * 64,
                                                          "created": "2026", "scopes": ["admin"]}]}),
     r"keys\[0\]: unknown scope"),
])
def test_a_broken_keys_file_is_a_clear_error_naming_it(tmp_path, content, message):
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        read_keys(path)
    assert str(path) in str(error.value)


def test_a_store_needs_an_active_key(tmp_path):
    path = tmp_path / "keys.json"
    with pytest.raises(ValueError, match="file not found"):
        KeyStore(path)
    key, _ = create_key(path, "desk")
    revoke_key(path, key.id)
    with pytest.raises(ValueError, match="no active key"):
        KeyStore(path)
