"""Square Catalog sandbox: the item variation prices a Square POS channel is priced through (docs/pricing.md,
adapters/pos/square_catalog.py), in Square's shapes (developer.squareup.com/reference/square/catalog-api).

- `POST /v2/catalog/search` with `object_types` and an `exact_query` (`attribute_name`, `attribute_value`) →
  `{"objects": [...]}` (no `objects` key when nothing matches, as Square answers).
- `POST /v2/catalog/object` (UpsertCatalogObject): the whole object; an existing id needs the current `version`
  (else 400 `VERSION_MISMATCH`); each write gets a new version and `updated_at`; a repeated `idempotency_key` answers
  the first result; `price_money.amount` must be a non-negative integer of minor units (else 400 `INVALID_VALUE`).
- `GET /v2/catalog/object/{id}` (RetrieveCatalogObject), 404 `NOT_FOUND`.
- Every call needs `Authorization: Bearer <access token>` (401 `UNAUTHORIZED`); the answer carries
  `Square-Version` (the request's, else the sandbox's default).
- Admin: `POST /_admin/variations` seeds `{"sku", "price", "currency", "name"?}`; `GET /_admin/prices` reports every
  variation's SKU and price.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sandbox.common import StateStore, iso_z, make_app
from sandbox.faults import FaultInjector, install_faults

DEFAULT_VERSION = "2025-10-16"


def _error(status: int, category: str, code: str, detail: str, field: str | None = None) -> JSONResponse:
    err: dict[str, Any] = {"category": category, "code": code, "detail": detail}
    if field:
        err["field"] = field
    return JSONResponse({"errors": [err]}, status)


def create_app(*, access_token: str = "square-sandbox-token", injector: FaultInjector | None = None) -> FastAPI:
    app = make_app("Square Catalog API", "Item variations and their prices: search, upsert, retrieve.")
    store = StateStore(id_start=1)
    install_faults(app, injector or FaultInjector(), reset_hooks=[store.reset])
    app.state.store = store

    @app.middleware("http")
    async def square_version(request: Request, call_next):
        if not request.url.path.startswith("/_admin") and not request.url.path.startswith("/docs") \
                and request.headers.get("Authorization") != f"Bearer {access_token}":
            response = _error(401, "AUTHENTICATION_ERROR", "UNAUTHORIZED", "This request could not be authorized.")
        else:
            response = await call_next(request)
        response.headers["Square-Version"] = request.headers.get("Square-Version", DEFAULT_VERSION)
        return response

    def _new_id() -> str:
        return f"SQV{store.ids.next_int('catalog'):021d}"

    @app.post("/_admin/variations", tags=["sandbox admin"], status_code=201)
    async def seed(request: Request) -> dict:
        body = await request.json()
        minor = int((Decimal(str(body.get("price", "0"))) * 100).to_integral_value())
        obj = {"type": "ITEM_VARIATION", "id": _new_id(), "version": int(time.time() * 1000), "is_deleted": False,
               "updated_at": iso_z(), "present_at_all_locations": True,
               "item_variation_data": {"item_id": _new_id(), "name": body.get("name", "Regular"), "sku": body["sku"],
                                       "pricing_type": "FIXED_PRICING",
                                       "price_money": {"amount": minor, "currency": body.get("currency", "USD")}}}
        store.put("objects", obj["id"], obj)
        return {"id": obj["id"]}

    @app.get("/_admin/prices", tags=["sandbox admin"])
    def prices() -> dict:
        return {"variations": [{"id": o["id"], "sku": o["item_variation_data"].get("sku"),
                                "price_money": o["item_variation_data"].get("price_money"), "version": o["version"]}
                               for o in store.collection("objects").values() if o["type"] == "ITEM_VARIATION"]}

    @app.post("/v2/catalog/search")
    async def search(request: Request):
        body = await request.json()
        types = set(body.get("object_types") or ["ITEM_VARIATION"])
        exact = (body.get("query") or {}).get("exact_query") or {}
        name, value = exact.get("attribute_name"), exact.get("attribute_value")
        found = [o for o in store.collection("objects").values() if o["type"] in types and not o["is_deleted"]
                 and (name is None or (o.get("item_variation_data") or {}).get(name) == value)]
        return {"objects": found} if found else {}

    @app.get("/v2/catalog/object/{object_id}")
    def retrieve(object_id: str):
        obj = store.get("objects", object_id)
        if obj is None or obj["is_deleted"]:
            return _error(404, "INVALID_REQUEST_ERROR", "NOT_FOUND", f"Object with ID `{object_id}` not found.")
        return {"object": obj}

    @app.post("/v2/catalog/object")
    async def upsert(request: Request):
        body = await request.json()
        key, obj = body.get("idempotency_key"), body.get("object") or {}
        if not key:
            return _error(400, "INVALID_REQUEST_ERROR", "MISSING_REQUIRED_PARAMETER",
                          "Field must be set", "idempotency_key")
        done = store.get("idempotency", key)
        if done is not None:
            return done["answer"]
        money = (obj.get("item_variation_data") or {}).get("price_money") or {}
        amount = money.get("amount")
        if obj.get("type") == "ITEM_VARIATION" and (not isinstance(amount, int) or amount < 0):
            return _error(400, "INVALID_REQUEST_ERROR", "INVALID_VALUE",
                          "Invalid value for price_money.amount", "price_money.amount")
        with store.lock:
            current = store.get("objects", str(obj.get("id", "")))
            if current is not None and obj.get("version") != current["version"]:
                return _error(400, "INVALID_REQUEST_ERROR", "VERSION_MISMATCH",
                              "Object version does not match latest database version.", "version")
            saved = {**obj, "id": current["id"] if current else _new_id(),
                     "version": max(int(time.time() * 1000), (current or {}).get("version", 0) + 1),
                     "updated_at": iso_z(), "is_deleted": False}
            store.put("objects", saved["id"], saved)
            answer = {"catalog_object": saved, "id_mappings": []}
            store.put("idempotency", key, {"answer": answer})
        return answer

    return app
