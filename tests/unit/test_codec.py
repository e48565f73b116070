"""The Temporal payload codec (runtime/codec.py) and the API's codec server (api/routers/codec.py): sealed
payloads, pass-through of clear ones, tampering, every client getting the codec, authentication, the cookie
session and CORS for the Web UI's origin only."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient
from google.protobuf.json_format import MessageToDict
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.contrib.pydantic import pydantic_data_converter

from adapters.crypto import Keyring, SealedDataError, new_key
from api.app import create_app
from canonical.order import Address
from runtime.cluster import client_options
from runtime.codec import ENCODING, KEY_ID_METADATA, EncryptionCodec, data_converter
from runtime.settings import Settings
from tests.auth import headers, make_key

UI = "http://localhost:8233"


def keys_spec(*ids: str) -> tuple[str, dict[str, bytes]]:
    raw = {i: new_key() for i in ids}
    return ",".join(f"{i}:{base64.b64encode(k).decode()}" for i, k in raw.items()), raw


async def test_failure_messages_are_sealed_and_the_audit_reads_them():
    """An error text quoting a customer's address is sealed in the failure (encoded attributes), and the audit
    trail, which reads failures from the raw history, opens it again."""
    from temporalio.api.failure.v1 import Failure
    from temporalio.exceptions import ApplicationError

    from api.audit import _open_failure

    converter = data_converter(Keyring.generate("k1"))
    failure = Failure()
    error = ApplicationError("address not found: 123 Shipping Street, jon@example.com", type="AddressInvalid")
    error.__cause__ = ApplicationError("geocoder: 123 Shipping Street")
    converter.failure_converter.to_failure(error, converter.payload_converter, failure)
    await converter.payload_codec.encode_failure(failure)
    raw = failure.SerializeToString()
    assert b"Shipping Street" not in raw and b"jon@example.com" not in raw and b"AddressInvalid" in raw

    await converter.payload_codec.decode_failure(failure)
    _open_failure(failure, converter.payload_converter)
    assert failure.message == "address not found: 123 Shipping Street, jon@example.com"
    assert failure.cause.message == "geocoder: 123 Shipping Street"


async def test_payloads_are_sealed_and_come_back():
    converter = data_converter(Keyring.generate("k1"))
    address = Address(name="Steve Shipper", line1="123 Shipping Street", city="Louisville", country="US",
                      phone="555-555-SHIP")
    [payload] = await converter.encode([address])
    assert payload.metadata["encoding"] == ENCODING and payload.metadata[KEY_ID_METADATA] == b"k1"
    assert b"Shipping Street" not in payload.SerializeToString() and b"Steve" not in payload.data
    assert await converter.decode([payload], [Address]) == [address]


async def test_clear_payloads_pass_through_and_tampering_fails():
    codec = EncryptionCodec(Keyring.generate("k1"))
    [clear] = await pydantic_data_converter.encode(["jon@example.com"])
    assert await codec.decode([clear]) == [clear]  # a history from before the codec still replays
    [sealed] = await codec.encode([clear])
    assert (await codec.encode([sealed]))[0] == sealed  # never sealed twice
    bad = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    with pytest.raises(SealedDataError):
        await codec.decode([bad])
    relabelled = Payload(metadata={**sealed.metadata, KEY_ID_METADATA: b"k0"}, data=sealed.data)
    with pytest.raises(SealedDataError, match="names key 'k0'"):
        await codec.decode([relabelled])


def test_every_client_gets_the_codec_with_the_configured_keys():
    spec, _ = keys_spec("live2", "live1")
    options = client_options(Settings(_env_file=None, codec_keys=spec))
    codec = options["data_converter"].payload_codec
    assert isinstance(codec, EncryptionCodec) and codec.keyring.key_ids == ("live2", "live1")
    assert options["data_converter"].payload_converter_class is pydantic_data_converter.payload_converter_class


@pytest.fixture
def api(engine):
    spec, _ = keys_spec("api1")
    app = create_app(Settings(_env_file=None, codec_keys=spec), engine=engine)
    return TestClient(app), EncryptionCodec(app.state.keyring), engine


def body_of(payloads: list[Payload]) -> dict:
    return MessageToDict(Payloads(payloads=payloads))


async def test_decode_needs_credentials_and_works_for_a_viewer(api):
    http, codec, engine = api
    [clear] = await pydantic_data_converter.encode([{"email": "jon@example.com"}])
    [sealed] = await codec.encode([clear])
    assert http.post("/codec/decode", json=body_of([sealed])).status_code == 401
    assert http.post("/codec/decode", json=body_of([sealed]), headers=headers("rfk_nope_nope")).status_code == 401
    viewer = headers(make_key(engine, "viewer"))
    resp = http.post("/codec/decode?preserveStorageRefs=true", json=body_of([sealed]),
                     headers={**viewer, "X-Namespace": "default"})
    assert resp.status_code == 200, resp.text
    [back] = resp.json()["payloads"]
    assert base64.b64decode(back["data"]) == clear.data and base64.b64decode(back["metadata"]["encoding"]) == \
        b"json/plain"
    encoded = http.post("/codec/encode", json=body_of([clear]), headers=viewer)
    assert encoded.status_code == 200
    assert base64.b64decode(encoded.json()["payloads"][0]["metadata"]["encoding"]) == ENCODING
    tampered = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-2] + b"xx")
    bad = http.post("/codec/decode", json=body_of([clear, tampered]), headers=viewer)
    assert bad.status_code == 422 and "payload 1" in bad.json()["detail"]
    assert http.post("/codec/decode", content=b"{not json", headers=viewer).status_code == 422
    wrong_shape = http.post("/codec/decode", json={"payloads": [{"metadata": ["x"]}]}, headers=viewer)
    assert wrong_shape.status_code == 422 and "metadata" in str(wrong_shape.json()["detail"])
    other = http.post("/codec/decode", json=body_of([sealed]), headers={**viewer, "X-Namespace": "finance"})
    assert other.status_code == 403


async def test_the_cookie_session_signs_the_web_ui_in_and_out(api):
    http, codec, engine = api
    [sealed] = await codec.encode(await pydantic_data_converter.encode(["Steve Shipper"]))
    key = make_key(engine, "analyst")
    browser = TestClient(http.app)  # keeps cookies like a browser; sends no header after signing in
    assert browser.post("/codec/session").status_code == 401
    signed = browser.post("/codec/session", headers=headers(key))
    assert signed.status_code == 204
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith("rf_session=") and "HttpOnly" in cookie and "SameSite=lax" in cookie \
        and "Path=/codec/" in cookie
    assert browser.get("/codec/whoami").json()["role"] == "analyst"
    resp = browser.post("/codec/decode", json=body_of([sealed]))
    assert resp.status_code == 200 and b"Steve Shipper" in base64.b64decode(resp.json()["payloads"][0]["data"])
    assert http.get("/orders", headers={"Cookie": f"rf_session={key}"}).status_code == 401  # codec only
    out = browser.delete("/codec/session")
    assert out.status_code == 204 and 'rf_session=""' in out.headers["set-cookie"]
    assert browser.post("/codec/decode", json=body_of([sealed])).status_code == 401  # signed out
    assert "Sign in" in http.get("/codec/session").text


def test_cors_answers_the_web_ui_origin_only(api):
    http, _, _ = api
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,x-namespace,authorization"}
    ok = http.options("/codec/decode", headers={"Origin": UI, **preflight})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == UI
    assert ok.headers["access-control-allow-credentials"] == "true"
    refused = http.options("/codec/decode", headers={"Origin": "http://evil.example:8233", **preflight})
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    assert "access-control-allow-origin" not in http.post("/codec/decode", json={}, headers={
        "Origin": "http://evil.example:8233"}).headers
    other_route = http.options("/orders", headers={"Origin": UI, **preflight})
    assert "access-control-allow-origin" not in other_route.headers  # CORS for the codec only
