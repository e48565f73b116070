"""The keyring that seals personal data at rest (adapters/crypto.py): AES-256-GCM, key ids, rotation, tampering,
key specs and files, and the settings that refuse to run production without keys."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest

from adapters.crypto import (
    MAGIC,
    Keyring,
    KeyringError,
    SealedDataError,
    is_sealed,
    load_or_create_key_file,
    new_key,
    write_key_file,
)
from runtime.codec import CodecConfigError, keyring_from_settings
from runtime.settings import Settings

SECRET = b'{"email": "jon@example.com", "phone": "+1-555-0100"}'


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_seal_opens_and_hides_the_plaintext():
    ring = Keyring.generate("k1")
    blob = ring.seal(SECRET, b"ctx")
    assert is_sealed(blob) and blob.startswith(MAGIC) and b"jon@example.com" not in blob
    assert ring.key_id_of(blob) == "k1"
    assert ring.open(blob, b"ctx") == SECRET
    assert ring.seal(SECRET, b"ctx") != blob  # a fresh 96-bit nonce every time


def test_rotation_opens_the_old_key_and_seals_under_the_new():
    old_key, new = new_key(), new_key()
    before = Keyring([("k1", old_key)])
    sealed_before = before.seal(SECRET)
    rotated = Keyring([("k2", new), ("k1", old_key)])  # the new key first: active
    assert rotated.open(sealed_before) == SECRET
    sealed_after = rotated.seal(SECRET)
    assert rotated.key_id_of(sealed_after) == "k2" and rotated.open(sealed_after) == SECRET
    with pytest.raises(SealedDataError, match="k2"):  # the old ring cannot read what the new key sealed
        before.open(sealed_after)
    retired = Keyring([("k2", new)])  # the old key dropped too early
    with pytest.raises(SealedDataError, match="'k1', which is not in the keyring"):
        retired.open(sealed_before)


@pytest.mark.parametrize("where", ["ciphertext", "tag", "nonce", "key id"])
def test_a_tampered_blob_fails(where):
    ring = Keyring([("k1", new_key()), ("k0", new_key())])
    blob = bytearray(ring.seal(SECRET))
    header = len(MAGIC) + 1 + 2
    index = {"ciphertext": header + 12 + 3, "tag": len(blob) - 1, "nonce": header + 1, "key id": header - 1}[where]
    blob[index] ^= 0x01 if where != "key id" else ord("1") ^ ord("0")  # "k1" -> "k0": another key of the ring
    with pytest.raises(SealedDataError):
        ring.open(bytes(blob))


def test_the_wrong_context_or_a_truncated_blob_fails():
    ring = Keyring.generate()
    blob = ring.seal(SECRET, b"quarantine:shopify:1")
    with pytest.raises(SealedDataError, match="another context"):
        ring.open(blob, b"quarantine:shopify:2")
    with pytest.raises(SealedDataError):
        ring.open(blob[:20])
    with pytest.raises(SealedDataError, match="not a sealed blob"):
        ring.open(SECRET)


def test_specs_and_files(tmp_path):
    k1, k0 = new_key(), new_key()
    ring = Keyring.from_spec(f"id1:{b64(k1)}, id0:{b64(k0)}")
    assert ring.key_ids == ("id1", "id0") and ring.active_key_id == "id1"
    assert Keyring([("id1", k1)]).open(ring.seal(SECRET)) == SECRET  # the first seals
    lines = tmp_path / "keys.txt"
    lines.write_text(f"# rotated 2026-12\nid1:{b64(k1)}\nid0:{b64(k0)}\n")
    assert Keyring.from_file(lines).key_ids == ("id1", "id0")
    js = tmp_path / "keys.json"
    js.write_text(json.dumps({"keys": [{"id": "id0", "key": b64(k0)}]}))
    assert Keyring.from_file(js).open(Keyring([("id0", k0)]).seal(SECRET)) == SECRET
    for bad, match in [(f"id1:{b64(b'x' * 16)}", "16 bytes"), ("id1:not base64!", "base64"),
                       (f"id1:{b64(k1)},id1:{b64(k0)}", "twice"), ("", "at least one"),
                       (b64(k1), "id:<base64"), (f"bad id:{b64(k1)}", "must be")]:
        with pytest.raises(KeyringError, match=match):
            Keyring.from_spec(bad)
    with pytest.raises(KeyringError, match="cannot read"):
        Keyring.from_file(tmp_path / "missing.json")


def test_the_dev_key_file_is_made_once_owner_only(tmp_path):
    path = tmp_path / "data" / "codec-keys.json"
    first = load_or_create_key_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = load_or_create_key_file(path)
    assert again.key_ids == first.key_ids and again.open(first.seal(SECRET)) == SECRET
    with pytest.raises(FileExistsError):
        write_key_file(path, [("other", new_key())])  # never replaced: that would orphan sealed data


def test_settings_choose_the_keys_and_production_refuses_missing_or_short_ones(tmp_path):
    unset = dict(_env_file=None, codec_keys=None, codec_key_file=None)  # whatever the environment says
    dev = keyring_from_settings(Settings(**unset, data_dir=tmp_path))
    assert (tmp_path / "codec-keys.json").exists()  # development: generated once under the data dir
    assert keyring_from_settings(Settings(**unset, data_dir=tmp_path)).key_ids == dev.key_ids
    key = b64(new_key())
    assert keyring_from_settings(Settings(_env_file=None, codec_keys=f"prod1:{key}")).key_ids == ("prod1",)

    prod = dict(_env_file=None, env="production", data_dir=tmp_path / "p")
    missing = Settings(**prod, codec_keys=None, codec_key_file=None)
    assert "RETAILFLOW_CODEC_KEYS (or RETAILFLOW_CODEC_KEY_FILE) is not set" in missing.production_problems()
    with pytest.raises(CodecConfigError):
        keyring_from_settings(missing)
    assert not (tmp_path / "p").exists()  # production never generates a key
    short = Settings(**prod, codec_keys=f"p1:{b64(b'k' * 31)}").production_problems()
    assert "RETAILFLOW_CODEC_KEYS: codec key 'p1' is 31 bytes; AES-256 needs exactly 32" in short
    assert not [p for p in Settings(**prod, codec_keys=f"p1:{key}").production_problems() if "CODEC" in p]
    missing_file = Settings(**prod, codec_keys=None, codec_key_file=tmp_path / "nope.json").production_problems()
    assert any(p.startswith("RETAILFLOW_CODEC_KEY_FILE: cannot read") for p in missing_file)
