"""The Temporal payload codec: every payload a retailflow client sends (workflow and activity inputs and results,
signals, updates, queries, memos, summaries, failure details) is sealed with AES-256-GCM before it leaves the
process, so the Temporal server and its database hold ciphertext only. docs/security.md "Encryption".

An encrypted payload is `metadata {encoding: binary/encrypted, encryption-key-id: <id>}` and `data` = the sealed
serialized original Payload (adapters/crypto.py; the key id also travels inside the blob, authenticated, and the
context "temporal-payload" is bound as associated data, so a sealed quarantine body cannot pass for a payload).
`decode` passes through payloads that are not encrypted, so histories recorded before the codec still replay and
runs started before it still finish. Search attributes are not payloads the codec sees (the server indexes
them), so they never carry personal data (workflows/search_attributes.py).

Every process gets the codec through `runtime.cluster.client_options` (worker, API, CLI, bench); the API serves
it to the Temporal Web UI as a codec server (api/routers/codec.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

from adapters.crypto import Keyring, KeyringError, SealedDataError, load_or_create_key_file
from runtime.settings import CodecSettings, Settings

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
PAYLOAD_AAD = b"retailflow/temporal-payload/v1"


class CodecConfigError(KeyringError):
    """No usable codec keys (production without RETAILFLOW_CODEC_KEYS / _KEY_FILE, or a bad key)."""


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over whole payloads, under the keyring's active key; opens any key of the ring."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encode_one(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decode_one(p) for p in payloads]

    def encode_one(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") == ENCODING:
            return payload  # already sealed (e.g. a payload handed back unchanged): never sealed twice
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: self.keyring.active_key_id.encode()},
            data=self.keyring.seal(payload.SerializeToString(), PAYLOAD_AAD),
        )

    def decode_one(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # recorded before the codec (or never encrypted): as it is
        blob = payload.data
        claimed = payload.metadata.get(KEY_ID_METADATA, b"").decode("ascii", "replace")
        if claimed and claimed != self.keyring.key_id_of(blob):
            raise SealedDataError(f"payload metadata names key {claimed!r} but the blob was sealed under another")
        original = Payload()
        original.ParseFromString(self.keyring.open(blob, PAYLOAD_AAD))
        return original


@lru_cache(maxsize=16)
def data_converter(keyring: Keyring) -> DataConverter:
    """The platform's data converter (pydantic) with the encryption codec; one per keyring, so every client of a
    process (worker, API) shares the same converter."""
    # failure messages and stack traces go into the failure's encoded attributes, a payload the codec seals: an
    # error text that quotes a customer's address (a tax engine's "address not found: …") is not left in clear
    return dataclasses.replace(pydantic_data_converter, payload_codec=EncryptionCodec(keyring),
                               failure_converter_class=DefaultFailureConverterWithEncodedAttributes)


@lru_cache(maxsize=16)
def _keyring(spec: str | None, key_file: Path | None, dev_file: Path | None) -> Keyring:
    if spec is not None:
        return Keyring.from_spec(spec)
    if key_file is not None:
        return Keyring.from_file(key_file)
    assert dev_file is not None
    return load_or_create_key_file(dev_file)


def keyring_from_settings(settings: Settings | CodecSettings) -> Keyring:
    """The keys from RETAILFLOW_CODEC_KEYS, else RETAILFLOW_CODEC_KEY_FILE, else (development only) the key
    file under the data dir, created once with a random key. Production without keys: CodecConfigError."""
    spec = settings.codec_keys.get_secret_value() if settings.codec_keys is not None else None
    dev_file = None
    if spec is None and settings.codec_key_file is None:
        if getattr(settings, "env", "development") == "production":
            raise CodecConfigError("RETAILFLOW_CODEC_KEYS (or RETAILFLOW_CODEC_KEY_FILE) is not set")
        dev_file = Path(settings.dev_codec_key_file).resolve()
    try:
        return _keyring(spec, settings.codec_key_file, dev_file)
    except KeyringError as exc:
        raise CodecConfigError(str(exc)) from None


def codec_from_settings(settings: Settings) -> EncryptionCodec:
    return EncryptionCodec(keyring_from_settings(settings))
