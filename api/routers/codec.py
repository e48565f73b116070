"""Temporal's codec server, so the Web UI (and `temporal --codec-endpoint`) shows payloads decrypted to whoever
may see them, and ciphertext to everyone else. docs/security.md "Encryption".

Protocol (Temporal's remote codec): `POST /codec/encode` and `POST /codec/decode` take and answer
`{"payloads": [...]}`, the protobuf JSON of `temporal.api.common.v1.Payloads` (metadata values and data in
base64); the Web UI adds `?preserveStorageRefs=true` and the `X-Namespace` header. Both need a `viewer` or
higher: `Authorization: Bearer <API key or OIDC access token>` (the production Web UI passes the signed-in
user's OIDC token: TEMPORAL_CODEC_PASS_ACCESS_TOKEN=true), `X-API-Key`, or the `rf_session` cookie that
`POST /codec/session` sets from an API key (the dev Web UI, whose codec calls carry cookies when its Codec Server
setting "Include cross-origin credentials" is on). A 4xx makes the Web UI show the payloads as they are: encrypted.

CORS answers only the origins of RETAILFLOW_CODEC_CORS_ORIGINS (default the dev Web UI), with credentials.
"""

from __future__ import annotations

import html
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.cors import CORSMiddleware
from temporalio.api.common.v1 import Payloads

from adapters.crypto import SealedDataError
from adapters.platform.api_keys import PREFIX as KEY_PREFIX
from api.auth import SESSION_COOKIE, Viewer, api_key_scheme, bearer_scheme
from runtime.codec import EncryptionCodec, keyring_from_settings
from runtime.settings import Settings

router = APIRouter(prefix="/codec", tags=["codec"])
PREFIX = "/codec/"
SESSION_SECONDS = 8 * 3600
MAX_PAYLOADS = 10_000


class CodecCors:
    """CORS for /codec/* only (the Web UI's origin, with credentials); every other route stays same-origin."""

    def __init__(self, app, *, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app, allow_origins=origins, allow_credentials=True, allow_methods=["POST", "DELETE"],
            allow_headers=["Content-Type", "X-Namespace", "Authorization", "Authorization-Extras", "X-API-Key"],
            max_age=600)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith(PREFIX):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def install(app: FastAPI, settings: Settings) -> None:
    """The codec server on `app`: its keys (the same as the worker's), its routes and its CORS."""
    app.state.keyring = keyring_from_settings(settings)
    app.state.codec = EncryptionCodec(app.state.keyring)
    app.include_router(router)
    app.add_middleware(CodecCors, origins=list(settings.codec_cors_origins))


class CodecPayload(BaseModel):
    """temporal.api.common.v1.Payload as protobuf JSON: metadata values and data in base64."""

    model_config = ConfigDict(extra="ignore")
    metadata: dict[str, str] = Field(default_factory=dict)
    data: str = ""


class CodecPayloads(BaseModel):
    model_config = ConfigDict(extra="ignore")
    payloads: list[CodecPayload] = Field(default_factory=list, max_length=MAX_PAYLOADS)


def _payloads(request: Request, body: CodecPayloads, namespace: str | None) -> Payloads:
    settings: Settings = request.app.state.settings
    if namespace is not None and namespace != settings.temporal_namespace:
        raise HTTPException(403, f"this codec serves namespace {settings.temporal_namespace!r}, not {namespace!r}")
    try:
        return ParseDict(body.model_dump(), Payloads())
    except (ParseError, TypeError, ValueError) as exc:  # e.g. data that is not base64
        raise HTTPException(400, f"payloads: {str(exc)[:200]}") from None


def _answer(payloads: list[Any]) -> CodecPayloads:
    return CodecPayloads.model_validate(MessageToDict(Payloads(payloads=payloads)))


@router.post("/encode", summary="Encrypt payloads (Temporal remote codec)", response_model=CodecPayloads)
async def encode(request: Request, body: CodecPayloads, principal: Viewer,
                 x_namespace: Annotated[str | None, Header()] = None) -> CodecPayloads:
    payloads = _payloads(request, body, x_namespace)
    return _answer(await request.app.state.codec.encode(payloads.payloads))


@router.post("/decode", summary="Decrypt payloads (Temporal remote codec)", response_model=CodecPayloads)
async def decode(request: Request, body: CodecPayloads, principal: Viewer,
                 x_namespace: Annotated[str | None, Header()] = None) -> CodecPayloads:
    """Payloads that are not encrypted come back unchanged; one that cannot be opened (unknown key, tampered
    with) answers 422 naming it."""
    payloads = _payloads(request, body, x_namespace)
    codec: EncryptionCodec = request.app.state.codec
    out = []
    for i, payload in enumerate(payloads.payloads):
        try:
            out.append(codec.decode_one(payload))
        except SealedDataError as exc:
            raise HTTPException(422, f"payload {i}: {exc}") from None
    return _answer(out)


def _api_key_given(bearer: HTTPAuthorizationCredentials | None, api_key: str | None) -> str:
    if bearer is not None and bearer.credentials and bearer.credentials.strip().startswith(KEY_PREFIX + "_"):
        return bearer.credentials.strip()
    if api_key:
        return api_key.strip()
    if bearer is not None and bearer.credentials:
        raise HTTPException(400, "a codec session holds an API key; an OIDC token is passed by the Web UI itself "
                                 "(TEMPORAL_CODEC_PASS_ACCESS_TOKEN=true)")
    raise HTTPException(401, "send the API key: Authorization: Bearer <key> or X-API-Key",
                        headers={"WWW-Authenticate": "Bearer"})


@router.post("/session", status_code=204, summary="Sign in the codec (sets the rf_session cookie)")
async def sign_in(request: Request, principal: Viewer,
                  bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
                  api_key: Annotated[str | None, Depends(api_key_scheme)]) -> Response:
    """Keep the API key in an HttpOnly cookie scoped to /codec/, so the Web UI's codec calls (made with
    `credentials: include`) carry it. The key must come in a header: a cookie does not renew itself."""
    key = _api_key_given(bearer, api_key)
    response = Response(status_code=204)
    response.set_cookie(SESSION_COOKIE, key, max_age=SESSION_SECONDS, path="/codec/", httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")
    return response


@router.delete("/session", status_code=204, summary="Sign out the codec (clears the cookie)")
async def sign_out(request: Request) -> Response:
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/codec/", httponly=True, samesite="lax",
                           secure=request.url.scheme == "https")
    return response


@router.get("/whoami", summary="Who the codec sees (cookie or header)")
async def whoami(principal: Viewer) -> dict[str, str]:
    return {"name": principal.name, "role": principal.role.value, "via": principal.via}


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>retailflow codec sign-in</title>
<style>body{{font-family:system-ui,sans-serif;max-width:42rem;margin:3rem auto;line-height:1.5}}
input{{width:100%;padding:.4rem;font-family:monospace}}button{{margin:.5rem .5rem 0 0;padding:.4rem 1rem}}
code{{background:#eee;padding:0 .2rem}}</style></head>
<body><h1>Decrypt payloads in the Temporal Web UI</h1>
<p>Workflow payloads are encrypted. Sign in with your retailflow API key; this browser then keeps it in an
HttpOnly cookie for the codec endpoint <code>{endpoint}</code> only, for 8 hours.</p>
<form id="f"><label for="key">API key</label><input id="key" name="key" type="password" autocomplete="off"
placeholder="rfk_..."><button type="submit">Sign in</button><button type="button" id="out">Sign out</button></form>
<p id="status" role="status"></p>
<p>Then in the Web UI (open it as <code>http://localhost:...</code>, the same host as this page): the
<b>Codec Server</b> settings (the icon at the top right), <b>Use my browser setting</b>, endpoint
<code>{endpoint}</code>, tick <b>Include cross-origin credentials</b>, apply, and reload the workflow.</p>
<script>
const status = document.getElementById("status");
async function who() {{
  const r = await fetch("whoami", {{credentials: "same-origin"}});
  status.textContent = r.ok ? "Signed in as " + (await r.json()).name : "Not signed in: payloads stay encrypted.";
}}
document.getElementById("f").addEventListener("submit", async (e) => {{
  e.preventDefault();
  const key = document.getElementById("key").value.trim();
  const r = await fetch("session", {{method: "POST", headers: {{Authorization: "Bearer " + key}}}});
  document.getElementById("key").value = "";
  if (!r.ok) {{ status.textContent = "Refused: " + (await r.text()); return; }}
  await who();
}});
document.getElementById("out").addEventListener("click", async () => {{
  await fetch("session", {{method: "DELETE"}}); await who();
}});
who();
</script></body></html>
"""


@router.get("/session", response_class=HTMLResponse, summary="The codec sign-in page")
async def sign_in_page(request: Request) -> HTMLResponse:
    endpoint = str(request.url_for("decode")).rsplit("/", 1)[0]
    return HTMLResponse(_PAGE.format(endpoint=html.escape(endpoint)))
