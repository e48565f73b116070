"""OIDC bearer tokens (api/auth.py `OidcVerifier`): JWTs signed by locally generated RSA and EC keys, verified
against a JWKS file (offline) and a JWKS URL served on loopback; every way a token can be wrong answers 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.app import create_app
from api.auth import OidcVerifier, Role
from runtime.settings import Settings

ISS, AUD = "https://idp.retailer.example/", "retailflow-api"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SYMMETRIC = b"a-shared-secret-that-must-never-verify-anything"


def _jwks() -> dict:
    rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(EC_KEY.public_key()))
    oct_jwk = {"kty": "oct", "kid": "sym", "k": base64.urlsafe_b64encode(SYMMETRIC).decode().rstrip("=")}
    return {"keys": [{**rsa_jwk, "kid": "rsa-1", "alg": "RS256", "use": "sig"}, {**ec_jwk, "kid": "ec-1"}, oct_jwk]}


def _claims(**over) -> dict:
    now = int(time.time())
    claims = {"iss": ISS, "aud": AUD, "sub": "user-42", "iat": now, "nbf": now, "exp": now + 300,
              "roles": ["analyst"]}
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def token(key=RSA_KEY, alg: str = "RS256", kid: str | None = "rsa-1", **over) -> str:
    return jwt.encode(_claims(**over), key, algorithm=alg, headers={"kid": kid} if kid else None)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def forged(header: dict, claims: dict, secret: bytes | None) -> str:
    """A token PyJWT would not sign: `alg: none`, or HS256 keyed with a public value (algorithm confusion)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    sig = b"" if secret is None else hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(sig)}"


@pytest.fixture
def jwks_file(tmp_path):
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(_jwks()))
    return path


@pytest.fixture
def settings(jwks_file) -> Settings:
    return Settings(_env_file=None, oidc_issuer=ISS, oidc_audience=AUD, oidc_jwks_file=jwks_file)


@pytest.fixture
def engine(tmp_path):
    """Tokens need no database but the app's: SQLite only (the key store runs on both in test_auth.py)."""
    from adapters.sql import create_schema, make_engine

    eng = make_engine(f"sqlite:///{tmp_path / 'oidc.db'}")
    create_schema(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def http(settings, engine) -> TestClient:
    return TestClient(create_app(settings, engine=engine))


def _get(http: TestClient, bearer: str):
    return http.get("/ops/needs-attention", headers={"Authorization": f"Bearer {bearer}"})


def test_a_valid_token_is_the_principal_oidc_sub_with_its_highest_role(http, settings):
    assert _get(http, token()).status_code == 200
    verifier = OidcVerifier(settings)
    who = verifier.verify(token())
    assert (who.name, who.role, who.via) == ("oidc:user-42", Role.analyst, "oidc")
    assert verifier.verify(token(roles=["viewer", "finance"])).role is Role.finance
    assert verifier.verify(token(roles="viewer admin")).role is Role.admin  # a space-separated string claim
    assert verifier.verify(token(EC_KEY, "ES256", "ec-1")).role is Role.analyst  # EC keys too
    # a viewer token is refused where the role does not reach
    resp = http.post("/ops/quarantine/1/replay", headers={"Authorization": f"Bearer {token(roles=['viewer'])}"})
    assert resp.status_code == 403


def test_no_retailflow_role_is_403(http):
    for roles in ([], ["employee"], None, 7):
        resp = _get(http, token(roles=roles))
        assert resp.status_code == 403 and "carries no retailflow role" in resp.json()["detail"], roles


@pytest.mark.parametrize("case", ["wrong_iss", "wrong_aud", "expired", "not_yet_valid", "no_exp", "no_sub",
                                  "huge_sub", "alg_none", "hs256_with_public_key", "hs256_with_jwks_secret", "other_key",
                                  "unknown_kid", "no_kid_with_several_keys", "rs_token_with_ec_kid", "garbage"])
def test_a_bad_token_is_401(http, case):
    public_pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    bad = {
        "wrong_iss": lambda: token(iss="https://evil.example/"),
        "wrong_aud": lambda: token(aud="some-other-client"),
        "expired": lambda: token(exp=now - 120, iat=now - 600, nbf=now - 600),  # beyond the 30 s leeway
        "not_yet_valid": lambda: token(nbf=now + 600),
        "no_exp": lambda: token(exp=None),
        "no_sub": lambda: token(sub=None),
        "huge_sub": lambda: token(sub="x" * 191),
        "alg_none": lambda: forged({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, _claims(), None),
        "hs256_with_public_key": lambda: forged({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, _claims(),
                                                public_pem),
        "hs256_with_jwks_secret": lambda: forged({"alg": "HS256", "typ": "JWT", "kid": "sym"}, _claims(),
                                                 SYMMETRIC),
        "other_key": lambda: token(OTHER_RSA),
        "unknown_kid": lambda: token(kid="rsa-9"),
        "no_kid_with_several_keys": lambda: token(kid=None),
        "rs_token_with_ec_kid": lambda: token(kid="ec-1"),
        "garbage": lambda: "not.a.jwt",
    }[case]()
    resp = _get(http, bad)
    assert resp.status_code == 401, (case, resp.text)
    assert resp.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_only_asymmetric_algorithms_can_be_configured_and_oidc_needs_an_audience(jwks_file):
    for algs in (["HS256"], ["none"], ["RS256", "HS512"], []):
        with pytest.raises(ValidationError, match="asymmetric"):
            Settings(_env_file=None, oidc_algorithms=algs)
    half = Settings(_env_file=None, oidc_issuer=ISS, oidc_jwks_file=jwks_file)
    assert half.oidc_problems() == ["RETAILFLOW_OIDC_AUDIENCE is not set (tokens for any client of the issuer "
                                    "would pass)"]
    with pytest.raises(ValueError, match="AUDIENCE"):
        OidcVerifier(half)
    assert any("RETAILFLOW_OIDC_AUDIENCE" in p for p in Settings(
        _env_file=None, env="production", oidc_issuer=ISS, oidc_jwks_file=jwks_file).production_problems())


def test_a_nested_role_claim_and_a_role_map(jwks_file):
    settings = Settings(_env_file=None, oidc_issuer=ISS, oidc_audience=AUD, oidc_jwks_file=jwks_file,
                        oidc_role_claim="realm_access.roles", oidc_role_map={"retail-ops": "analyst"})
    verifier = OidcVerifier(settings)
    assert verifier.verify(token(roles=None, realm_access={"roles": ["retail-ops", "offline"]})).role is Role.analyst
    with pytest.raises(PermissionError):
        verifier.verify(token(roles=["admin"]))  # the top-level claim is not the configured one


def test_the_jwks_url_is_fetched_once_and_cached(engine):
    fetched = []
    body = json.dumps(_jwks()).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            fetched.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
        http = TestClient(create_app(Settings(_env_file=None, oidc_issuer=ISS, oidc_audience=AUD, oidc_jwks_url=url),
                                     engine=engine))
        for _ in range(3):
            assert _get(http, token()).status_code == 200
        assert _get(http, token(OTHER_RSA)).status_code == 401
        assert fetched == ["/.well-known/jwks.json"]
    finally:
        server.shutdown()
        server.server_close()
