"""Sealing personal data at rest: AES-256-GCM (the `cryptography` library's AESGCM) under a keyring.

A `Keyring` holds several 256-bit keys by id; the first is the active one: `seal` always uses it, `open` takes
any key of the ring, so a key can be rotated while data sealed under the old one (open workflow runs, quarantined
bodies) is still read — put the new key first and keep the old one after it until nothing needs it.

A sealed blob describes itself::

    MAGIC (5 bytes) | key id length (1 byte) | key id (ASCII) | nonce (12 random bytes) | ciphertext + GCM tag

The header (magic and key id) is authenticated together with the caller's `aad` (the context the blob belongs
to, e.g. "temporal-payload"), so a blob cannot be moved to another context or relabelled with another key id
without `open` failing.

Key specs (`Keyring.from_spec`, the setting RETAILFLOW_CODEC_KEYS): `id:<base64 of 32 bytes>` items separated
by commas or new lines, the first active. Key files (`Keyring.from_file`, RETAILFLOW_CODEC_KEY_FILE): either the
same lines (`#` starts a comment) or JSON ``{"keys": [{"id": "k2", "key": "<base64>"}, ...]}`` (a bare list of
such objects works too), the first active.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"\xf0RFs1"  # not valid UTF-8 and not JSON: a plaintext body never starts like a sealed blob
NONCE_BYTES = 12
KEY_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class KeyringError(ValueError):
    """A key spec or key file that cannot be used (bad id, not base64, not 32 bytes, duplicate, empty)."""


class SealedDataError(ValueError):
    """A sealed blob that cannot be opened: unknown key id, truncated, tampered with, or the wrong context."""


def is_sealed(blob: bytes) -> bool:
    """Whether `blob` looks like one of ours (it may still fail to open)."""
    return blob.startswith(MAGIC)


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def new_key_id() -> str:
    return "k" + secrets.token_hex(4)


def _decode_key(key_id: str, text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"codec key {key_id!r} is not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise KeyringError(f"codec key {key_id!r} is {len(raw)} bytes; AES-256 needs exactly {KEY_BYTES}")
    return raw


class Keyring:
    """Keys by id, the first active. Immutable once built."""

    def __init__(self, keys: Iterable[tuple[str, bytes]]) -> None:
        self._keys: dict[str, AESGCM] = {}
        order: list[str] = []
        for key_id, key in keys:
            if not _KEY_ID.match(key_id):
                raise KeyringError(f"codec key id {key_id!r} must be 1-64 of A-Z a-z 0-9 . _ -")
            if key_id in self._keys:
                raise KeyringError(f"codec key id {key_id!r} appears twice")
            if len(key) != KEY_BYTES:
                raise KeyringError(f"codec key {key_id!r} is {len(key)} bytes; AES-256 needs exactly {KEY_BYTES}")
            self._keys[key_id] = AESGCM(key)
            order.append(key_id)
        if not order:
            raise KeyringError("a keyring needs at least one key")
        self.key_ids: tuple[str, ...] = tuple(order)

    @property
    def active_key_id(self) -> str:
        return self.key_ids[0]

    # -- building ----------------------------------------------------------------------------------------------
    @classmethod
    def generate(cls, key_id: str | None = None) -> Keyring:
        return cls([(key_id or new_key_id(), new_key())])

    @classmethod
    def from_spec(cls, spec: str) -> Keyring:
        """`id1:<base64>,id0:<base64>` (commas or new lines), the first active."""
        items = [item.strip() for item in re.split(r"[,\n]", spec)]
        keys = []
        for item in items:
            if not item or item.startswith("#"):
                continue
            key_id, sep, text = item.partition(":")
            if not sep:
                raise KeyringError("each codec key is written id:<base64 of 32 bytes>")
            keys.append((key_id.strip(), _decode_key(key_id.strip(), text)))
        return cls(keys)

    @classmethod
    def from_file(cls, path: Path | str) -> Keyring:
        """A key file: JSON `{"keys": [{"id", "key"}, ...]}` (or the bare list), or `id:<base64>` lines."""
        path = Path(path).expanduser()
        try:
            text = path.read_text()
        except OSError as exc:
            raise KeyringError(f"cannot read the codec key file {path}: {exc.strerror or exc}") from None
        stripped = text.strip()
        if stripped.startswith(("{", "[")):
            try:
                doc = json.loads(stripped)
            except json.JSONDecodeError as exc:
                raise KeyringError(f"the codec key file {path} is not valid JSON: {exc.msg}") from None
            entries = doc.get("keys") if isinstance(doc, dict) else doc
            if not isinstance(entries, list):
                raise KeyringError(f"the codec key file {path} needs a list of keys")
            keys = []
            for entry in entries:
                if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) \
                        or not isinstance(entry.get("key"), str):
                    raise KeyringError(f"each key in {path} is an object with string fields id and key")
                keys.append((entry["id"], _decode_key(entry["id"], entry["key"])))
            return cls(keys)
        return cls.from_spec(text)

    # -- sealing -----------------------------------------------------------------------------------------------
    def _header(self, key_id: str) -> bytes:
        kid = key_id.encode("ascii")
        return MAGIC + bytes([len(kid)]) + kid

    def seal(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        """Encrypt under the active key with a fresh random 96-bit nonce."""
        header = self._header(self.active_key_id)
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + self._keys[self.active_key_id].encrypt(nonce, plaintext, header + aad)

    def key_id_of(self, blob: bytes) -> str:
        """The id of the key a blob was sealed under (without opening it)."""
        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 1:
            raise SealedDataError("not a sealed blob")
        n = blob[len(MAGIC)]
        kid = blob[len(MAGIC) + 1:len(MAGIC) + 1 + n]
        if len(kid) != n:
            raise SealedDataError("sealed blob truncated in its header")
        try:
            return kid.decode("ascii")
        except UnicodeDecodeError:
            raise SealedDataError("sealed blob has a malformed key id") from None

    def open(self, blob: bytes, aad: bytes = b"") -> bytes:
        """Decrypt a blob sealed under any key of the ring; SealedDataError if it cannot be authenticated."""
        key_id = self.key_id_of(blob)
        aead = self._keys.get(key_id)
        if aead is None:
            raise SealedDataError(f"sealed under key {key_id!r}, which is not in the keyring "
                                  f"(keys: {', '.join(self.key_ids)})")
        header_len = len(MAGIC) + 1 + len(key_id)
        header, nonce = blob[:header_len], blob[header_len:header_len + NONCE_BYTES]
        if len(nonce) != NONCE_BYTES or len(blob) < header_len + NONCE_BYTES + 16:
            raise SealedDataError("sealed blob truncated")
        try:
            return aead.decrypt(nonce, blob[header_len + NONCE_BYTES:], header + aad)
        except InvalidTag:
            raise SealedDataError(f"sealed blob under key {key_id!r} failed authentication "
                                  "(tampered with, or sealed for another context)") from None


def write_key_file(path: Path, keys: Iterable[tuple[str, bytes]]) -> None:
    """Write a JSON key file readable by its owner only (0600), atomically; an existing file is never replaced
    (FileExistsError), so two processes starting together end up with the same keys."""
    doc = {"keys": [{"id": key_id, "key": base64.b64encode(key).decode()} for key_id, key in keys]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        os.link(tmp, path)  # atomic and never overwrites: FileExistsError if another process won
    finally:
        tmp.unlink(missing_ok=True)


def load_or_create_key_file(path: Path) -> Keyring:
    """The development key file: created once (one fresh random key, 0600) and read from then on."""
    if not path.exists():
        try:
            write_key_file(path, [(new_key_id(), new_key())])
        except FileExistsError:
            pass  # created by a process that started at the same time
    return Keyring.from_file(path)
