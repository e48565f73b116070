"""ShipBob Developer API sandbox (date version 2026-01): the subset the 3PL adapter speaks, in the shapes of ShipBob's
published OpenAPI spec (tests/fixtures/shipbob/openapi_2026-01_developer_api_upstream.json; the contract tests
validate these answers against it).

- `POST /2026-01/order` (Orders.CreateOrderModel → 201 Orders.OrderViewModel; a reference_id already used in the
  channel answers 422 "Duplicate reference ID"), `GET /2026-01/order?ReferenceIds=` (a JSON array),
  `GET /2026-01/order/{id}`, `GET /2026-01/order/{id}/shipment`, `POST /2026-01/order/{id}:cancel`
  (Orders.CanceledOrderViewModel; 422 once shipped), `POST /2026-01/shipment/{id}:updateLineItems`.
- `GET /2026-01/product?SKU=`: the merchant's catalog. Every SKU the sandbox is asked about exists (one product,
  one variant, an inventory id), as if the merchant had created it in ShipBob.
- `POST /2026-01/return`, `GET /2026-01/return?ReferenceIds=`, `POST /2026-01/return/{id}:cancel` (only while
  `AwaitingArrival`); `POST /_admin/returns/{id}/arrive` moves one on.
- Auth as ShipBob does it: `Authorization: Bearer <PAT>` (401 otherwise) and the `shipbob_channel_id` header.
- Shipping: each order is shipped `ship_after_seconds` after it is created (none: only `POST /_admin/ship/{id}`);
  its shipment becomes `Completed` with tracking, the order `Fulfilled`, and an `order.shipped` webhook is POSTed,
  signed with the Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`, `webhook-signature`) and carrying
  the shipment (Orders.ShipmentViewModel, which names `order_id` and `reference_id`). ShipBob publishes no
  order.shipped example we could take unchanged; the adapter trusts only the order id of a notice and reads the
  shipments back, so the body's other fields do not matter to it.
- Rate limit signals: every answer has `x-remaining-calls` (of 150 a minute, sliding window); an injected 429
  answers ShipBob's way, `x-retry-after` and `{"statusCode": 429, "message": …}` (developer.shipbob.com/rate-limit).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import time
import uuid
from collections import deque
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sandbox.common import StateStore, make_app, utcnow
from sandbox.faults import FaultInjector, WebhookDelivery, deliver_webhooks, install_faults

V = "/2026-01"
ORDER_TYPES = ("DTC", "DropShip", "B2B")
CALLS_PER_MINUTE = 150
DEFAULT_WEBHOOK_SECRET = "whsec_cmV0YWlsZmxvdy1zYW5kYm94LXNoaXBib2Itc2VjcmV0"


def iso(dt: Any = None) -> str:
    return (dt or utcnow()).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks' v1 signature, as ShipBob signs a delivery."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def create_app(*, access_token: str | None = None, channel_id: int | None = None, webhook_url: str | None = None,
               webhook_secret: str | None = None, ship_after_seconds: float | None = 5.0,
               injector: FaultInjector | None = None) -> FastAPI:
    if access_token is None or channel_id is None or webhook_url is None or webhook_secret is None:
        from runtime.settings import get_settings

        s = get_settings()
        access_token = access_token or s.shipbob_access_token.get_secret_value()
        channel_id = channel_id if channel_id is not None else s.shipbob_channel_id
        webhook_secret = webhook_secret or s.shipbob_webhook_secret.get_secret_value()
        if webhook_url is None:
            webhook_url = s.effective_api_base_url + "/webhooks/shipbob"
    app = make_app("ShipBob Developer API (2026-01)", "Orders, shipments, products, returns and order.shipped.")
    store = StateStore(id_start=100_000_001)
    calls: deque[float] = deque()
    injector = install_faults(app, injector or FaultInjector(), reset_hooks=[store.reset, calls.clear])
    app.state.store = store
    app.state.webhook_url = webhook_url
    app.state.webhook_secret = webhook_secret
    app.state.ship_after_seconds = ship_after_seconds
    app.state.webhooks_sent: list[dict[str, Any]] = []
    expected = f"Bearer {access_token}"
    channel = {"id": channel_id, "name": "retailflow sandbox channel"}
    tasks: set[asyncio.Task] = set()

    @app.middleware("http")
    async def shipbob_rate_headers(request: Request, call_next):  # noqa: ANN202
        """Outside the fault middleware: ShipBob's own rate-limit headers and 429 body."""
        response = await call_next(request)
        if request.url.path.startswith("/_admin"):
            return response
        now = time.monotonic()
        calls.append(now)
        while calls and calls[0] < now - 60:
            calls.popleft()
        if response.status_code == 429:
            wait = response.headers.get("Retry-After") or "1"
            seconds = math.ceil(float(wait))
            return JSONResponse({"statusCode": 429, "message": f"Rate limit is exceeded. Try again in {seconds} "
                                 "seconds."}, status_code=429,
                                headers={"x-retry-after": str(seconds), "x-remaining-calls": "0"})
        response.headers["x-remaining-calls"] = str(max(CALLS_PER_MINUTE - len(calls), 0))
        return response

    def denied(request: Request, *, channel_required: bool = False) -> JSONResponse | None:
        if not hmac.compare_digest(request.headers.get("authorization", ""), expected):
            return JSONResponse({"message": "Authorization has been denied for this request."}, status_code=401)
        if channel_required and request.headers.get("shipbob_channel_id") != str(channel_id):
            return JSONResponse({"shipbob_channel_id": ["The channel id is missing or has no write access."]},
                                status_code=403)
        return None

    def bad(field: str, message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({field: [message]}, status_code=status)

    def public(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if not k.startswith("_")}

    # -- catalog -----------------------------------------------------------------------------------------------
    def variant_for(sku: str) -> dict[str, Any]:
        with store.lock:
            product = store.get("products", sku)
            if product is None:
                pid = store.ids.next_int("product") - 100_000_000 + 4_000_000
                vid = store.ids.next_int("variant") - 100_000_000 + 7_000_000
                iid = store.ids.next_int("inventory") - 100_000_000 + 9_557_854
                product = {"id": pid, "name": sku, "type": "Regular", "created_on": iso(), "updated_on": None,
                           "user_id": 1,
                           "taxonomy": {"id": None, "name": None, "parent_id": None, "parent_name": None, "path": None},
                           "variants": [{"id": vid, "name": sku, "sku": sku, "status": "Active", "upc": None,
                                         "gtin": None, "is_digital": False, "created_on": iso(), "updated_on": None,
                                         "inventory": {"inventory_id": iid, "on_hand_qty": 0}}]}
                store.put("products", sku, product)
                store.put("inventory", str(iid), {"sku": sku, "name": sku})
            return product

    # -- shipping ----------------------------------------------------------------------------------------------
    async def ship_later(order_id: int, delay: float) -> None:
        await asyncio.sleep(delay)
        await ship(order_id)

    async def ship(order_id: int) -> dict[str, Any] | None:
        with store.lock:
            order = store.get("orders", str(order_id))
            if order is None or order["status"] != "Processing":
                return None
            now = iso()
            shipment = order["shipments"][0]
            sid = shipment["id"]
            shipment.update({"status": "Completed", "actual_fulfillment_date": now, "last_update_at": now,
                             "last_tracking_update_at": now, "estimated_fulfillment_date_status": "FulfilledOnTime",
                             "tracking": {"carrier": "USPS", "carrier_service": "Ground Advantage",
                                          "tracking_number": f"92612903065294{sid:08d}",
                                          "tracking_url": "https://tools.usps.com/go/TrackConfirmAction?tLabels="
                                                          f"92612903065294{sid:08d}",
                                          "shipping_date": now, "bol": None, "pro_number": None, "scac": None}})
            order["status"] = "Fulfilled"
            payload = dict(shipment)
        if app.state.webhook_url:
            body = json.dumps(payload).encode()
            msg_id, stamp = f"msg_{uuid.uuid4().hex}", int(time.time())
            headers = {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(stamp),
                       "webhook-signature": _sign(app.state.webhook_secret, msg_id, stamp, body),
                       "x-webhook-topic": "order.shipped"}
            results = await deliver_webhooks([WebhookDelivery(app.state.webhook_url, body, headers, "order.shipped")],
                                             injector=injector)
            app.state.webhooks_sent.extend({"order_id": order_id, "status": r.status, "error": r.error,
                                            "body": payload, "headers": headers} for r in results)
        return shipment

    app.state.ship = ship

    # -- admin -------------------------------------------------------------------------------------------------
    @app.post("/_admin/ship/{order_id}", tags=["sandbox admin"])
    async def ship_now(order_id: int):
        shipment = await ship(order_id)
        if shipment is None:
            return bad("order", f"order {order_id} is not processing", 409)
        return {"shipment_id": shipment["id"], "webhooks": app.state.webhooks_sent[-2:]}

    @app.post("/_admin/returns/{return_id}/arrive", tags=["sandbox admin"])
    def arrive(return_id: int):
        ret = store.get("returns", str(return_id))
        if ret is None:
            return bad("return", f"no return {return_id}", 404)
        ret["status"], ret["arrived_date"] = "Arrived", iso()
        return public(ret)

    @app.put("/_admin/config", tags=["sandbox admin"])
    def config(ship_after_seconds: float | None = None, webhook_url: str | None = None) -> dict:
        app.state.ship_after_seconds = ship_after_seconds
        if webhook_url is not None:
            app.state.webhook_url = webhook_url or None
        return {"ship_after_seconds": app.state.ship_after_seconds, "webhook_url": app.state.webhook_url}

    @app.get("/_admin/webhooks", tags=["sandbox admin"])
    def webhooks_sent() -> dict:
        return {"webhooks": app.state.webhooks_sent}

    # -- orders ------------------------------------------------------------------------------------------------
    def check_order(body: Any) -> str | None:
        if not isinstance(body, dict):
            return "the body must be an object"
        for name in ("reference_id", "shipping_method"):
            if not isinstance(body.get(name), str) or not body[name].strip():
                return f"{name} is required"
        if len(body["reference_id"]) > 400:
            return "reference_id is too long"
        if body.get("type") not in ORDER_TYPES:
            return f"type must be one of {', '.join(ORDER_TYPES)}"
        rec = body.get("recipient")
        addr = rec.get("address") if isinstance(rec, dict) else None
        if not isinstance(rec, dict) or not isinstance(rec.get("name"), str) or not isinstance(addr, dict):
            return "recipient with name and address is required"
        for name in ("address1", "city", "country"):
            if not isinstance(addr.get(name), str) or not addr[name].strip():
                return f"recipient.address.{name} is required"
        prods = body.get("products")
        if not isinstance(prods, list) or not prods:
            return "products is required"
        for n, p in enumerate(prods):
            if not isinstance(p, dict) or isinstance(p.get("quantity"), bool) or not isinstance(p.get("quantity"), int) \
                    or p["quantity"] <= 0:
                return f"products[{n}].quantity must be a positive integer"
            if not (isinstance(p.get("reference_id"), str) and p["reference_id"].strip()) and "id" not in p:
                return f"products[{n}] needs a reference_id (or a ShipBob product id)"
        return None

    @app.post(f"{V}/order", status_code=201)
    async def create_order(request: Request):
        if (err := denied(request, channel_required=True)) is not None:
            return err
        try:
            body = await request.json()
        except ValueError:
            return bad("body", "The request body is not JSON.")
        if (problem := check_order(body)) is not None:
            return bad("order", problem)
        with store.lock:
            if store.find("orders", reference_id=body["reference_id"]):
                return bad("reference_id", f"Duplicate reference ID: an order with reference_id "
                           f"{body['reference_id']!r} already exists in this channel", 422)
            oid = store.ids.next_int("order")
            sid = store.ids.next_int("shipment") - 100_000_000 + 200_000_001
            now = iso()
            lines = []
            for p in body["products"]:
                variant = variant_for(p.get("reference_id") or str(p.get("id")))["variants"][0]
                lines.append({"id": variant["id"], "reference_id": p.get("reference_id"), "quantity": p["quantity"],
                              "sku": p.get("sku"), "external_line_id": p.get("external_line_id"),
                              "gtin": p.get("gtin"), "upc": p.get("upc"), "unit_price": p.get("unit_price"),
                              "quantity_unit_of_measure_code": p.get("quantity_unit_of_measure_code"),
                              "_inventory_id": variant["inventory"]["inventory_id"], "_name": p.get("name")})
            rec = body["recipient"]
            shipment = {"id": sid, "order_id": oid, "reference_id": body["reference_id"], "status": "Processing",
                        "status_details": [], "created_date": now, "last_update_at": now,
                        "actual_fulfillment_date": None, "delivery_date": None, "estimated_fulfillment_date": None,
                        "estimated_fulfillment_date_status": "AwaitingInventoryAllocation",
                        "is_tracking_uploaded": False, "last_tracking_update_at": None, "require_signature": False,
                        "ship_option": body["shipping_method"], "gift_message": body.get("gift_message"),
                        "insurance_value": None, "invoice_amount": None, "invoice_currency_code": None,
                        "location": {"id": 10, "name": "Cicero (IL)"}, "parent_cartons": [],
                        "tracking": {"carrier": None, "carrier_service": None, "tracking_number": None,
                                     "tracking_url": None, "shipping_date": None, "bol": None, "pro_number": None,
                                     "scac": None},
                        "recipient": {"name": rec["name"], "full_name": rec["name"], "address": rec["address"],
                                      "email": rec.get("email"), "phone_number": rec.get("phone_number")},
                        "products": [_shipment_product(line) for line in lines]}
            order = {"id": oid, "created_date": now, "purchase_date": body.get("purchase_date"),
                     "reference_id": body["reference_id"], "order_number": body.get("order_number"),
                     "status": "Processing", "type": body["type"], "channel": channel,
                     "shipping_method": body["shipping_method"], "recipient": rec,
                     "products": [public(line) for line in lines], "tags": body.get("tags") or [],
                     "shipments": [shipment], "gift_message": body.get("gift_message"),
                     "financials": body.get("financials") or {"total_price": None}}
            store.put("orders", str(oid), order)
        if app.state.ship_after_seconds is not None:
            task = asyncio.get_running_loop().create_task(ship_later(oid, app.state.ship_after_seconds))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return JSONResponse(order, status_code=201)

    def _shipment_product(line: dict[str, Any]) -> dict[str, Any]:
        return {"id": line["id"], "reference_id": line.get("reference_id"), "name": line.get("_name"),
                "sku": line.get("reference_id"),
                "inventory_items": [{"id": line["_inventory_id"], "name": line.get("_name"),
                                     "quantity": line["quantity"], "quantity_committed": line["quantity"],
                                     "is_dangerous_goods": False, "serial_numbers": [], "lot": None,
                                     "expiration_date": None}]}

    @app.get(f"{V}/order")
    def list_orders(request: Request, ReferenceIds: str | None = None, Page: int = 1, Limit: int = 50):  # noqa: N803
        if (err := denied(request)) is not None:
            return err
        refs = set(ReferenceIds.split(",")) if ReferenceIds else None
        rows = [o for o in store.collection("orders").values() if refs is None or o["reference_id"] in refs]
        limit = max(1, min(Limit, 250))
        start = (max(Page, 1) - 1) * limit
        return rows[start:start + limit]

    @app.get(f"{V}/order/{{order_id}}")
    def get_order(order_id: str, request: Request):
        if (err := denied(request)) is not None:
            return err
        order = store.get("orders", order_id)
        return order if order is not None else JSONResponse({}, status_code=404)

    @app.get(f"{V}/order/{{order_id}}/shipment")
    def get_shipments(order_id: str, request: Request):
        if (err := denied(request)) is not None:
            return err
        order = store.get("orders", order_id)
        return order["shipments"] if order is not None else JSONResponse({}, status_code=404)

    @app.post(f"{V}/order/{{order_id}}:cancel")
    def cancel_order(order_id: str, request: Request):
        if (err := denied(request)) is not None:
            return err
        with store.lock:
            order = store.get("orders", order_id)
            if order is None:
                return JSONResponse({}, status_code=404)
            if order["status"] == "Fulfilled":
                return bad("order", f"Order {order_id} has shipped and cannot be cancelled.", 422)
            results = []
            for s in order["shipments"]:
                s["status"] = "Cancelled"
                results.append({"shipment_id": s["id"], "action": "Cancel", "is_success": True, "reason": None})
            order["status"] = "Cancelled"
            return {"order_id": order["id"], "status": "Success", "canceled_shipment_results": results,
                    "order": order}

    @app.post(f"{V}/shipment/{{shipment_id}}:updateLineItems")
    async def update_line_items(shipment_id: str, request: Request):
        if (err := denied(request)) is not None:
            return err
        body = await request.json()
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items or not all(
                isinstance(i, dict) and isinstance(i.get("inventory_id"), int) and isinstance(i.get("quantity"), int)
                and i["quantity"] > 0 for i in items):
            return bad("items", "items with inventory_id and a positive quantity are required")
        with store.lock:
            found = [(o, s) for o in store.collection("orders").values() for s in o["shipments"]
                     if str(s["id"]) == shipment_id]
            if not found:
                return JSONResponse({}, status_code=404)
            order, shipment = found[0]
            if shipment["status"] not in ("Processing", "OnHold", "Exception"):
                return bad("shipment", f"Shipment {shipment_id} is {shipment['status']}; its line items cannot "
                           "change.")
            lines, changes = [], []
            for i in items:
                known = store.get("inventory", str(i["inventory_id"]))
                if known is None:
                    return bad("items", f"inventory {i['inventory_id']} does not exist", 400)
                variant = variant_for(known["sku"])["variants"][0]
                previous = next((p for p in order["products"] if p.get("reference_id") == known["sku"]), None)
                lines.append({"id": variant["id"], "reference_id": known["sku"], "quantity": i["quantity"],
                              "sku": previous.get("sku") if previous else known["sku"],
                              "external_line_id": previous.get("external_line_id") if previous else None,
                              "gtin": None, "upc": None, "unit_price": None, "quantity_unit_of_measure_code": None,
                              "_inventory_id": i["inventory_id"], "_name": known["name"]})
                changes.append({"action": "Updated" if previous else "Added", "inventory_id": i["inventory_id"],
                                "previous_value": str(previous["quantity"]) if previous else None,
                                "new_value": str(i["quantity"])})
            order["products"] = [public(line) for line in lines]
            shipment["products"] = [_shipment_product(line) for line in lines]
            shipment["last_update_at"] = iso()
        return {"id": int(shipment_id), "is_success": True, "shipment_line_items": changes}

    # -- products ----------------------------------------------------------------------------------------------
    @app.get(f"{V}/product")
    def list_products(request: Request, SKU: str | None = None, PageSize: int = 50):  # noqa: N803
        if (err := denied(request)) is not None:
            return err
        if SKU:
            return {"items": [variant_for(SKU)], "first": None, "last": None, "next": None, "prev": None}
        rows = list(store.collection("products").values())[:max(1, min(PageSize, 250))]
        return {"items": rows, "first": None, "last": None, "next": None, "prev": None}

    # -- returns -----------------------------------------------------------------------------------------------
    @app.post(f"{V}/return", status_code=201)
    async def create_return(request: Request):
        if (err := denied(request, channel_required=True)) is not None:
            return err
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("reference_id"), str) \
                or not 1 <= len(body["reference_id"]) <= 50:
            return bad("reference_id", "reference_id is required (1-50 characters)")
        fc = body.get("fulfillment_center")
        if not isinstance(fc, dict) or not isinstance(fc.get("id"), int):
            return bad("fulfillment_center", "fulfillment_center.id is required")
        inventory = body.get("inventory")
        if not isinstance(inventory, list) or not inventory:
            return bad("inventory", "inventory is required")
        ids = [i.get("id") for i in inventory if isinstance(i, dict)]
        if len(ids) != len(inventory) or len(set(ids)) != len(ids):
            return bad("inventory", "Include each inventory id exactly once.")
        rows = []
        for i in inventory:
            known = store.get("inventory", str(i.get("id")))
            if known is None or not isinstance(i.get("quantity"), int) or i["quantity"] <= 0 \
                    or i.get("requested_action") not in ("Default", "Restock", "Quarantine", "Dispose"):
                return bad("inventory", f"inventory {i.get('id')}: unknown id, bad quantity or requested_action")
            rows.append({"id": i["id"], "name": known["name"], "sku": known["sku"], "quantity": i["quantity"],
                         "action_requested": {"action": i["requested_action"], "action_type": None,
                                              "instructions": None}, "action_taken": [], "barcodes": [],
                         "lot_information": {"expiration": None, "minimumShelfLife": None, "number": None}})
        with store.lock:
            if [r for r in store.find("returns", reference_id=body["reference_id"]) if r["status"] != "Cancelled"]:
                return bad("reference_id", f"A return with reference_id {body['reference_id']!r} already exists.",
                           422)
            rid = store.ids.next_int("return") - 100_000_000 + 500_001
            now = iso()
            ret = {"id": rid, "reference_id": body["reference_id"], "status": "AwaitingArrival",
                   "insert_date": now, "awaiting_arrival_date": now, "arrived_date": None, "processing_date": None,
                   "completed_date": None, "cancelled_date": None, "channel": channel, "customer_name": None,
                   "fulfillment_center": {"id": fc["id"], "name": fc.get("name") or "Cicero (IL)"},
                   "inventory": rows, "original_shipment_id": body.get("original_shipment_id"),
                   "tracking_number": body.get("tracking_number"), "shipment_tracking_number": None,
                   "return_type": "Regular", "store_order_id": None, "transactions": [],
                   "invoice": {"amount": None, "currency_code": None},
                   "status_history": [{"status": "AwaitingArrival", "timestamp": now}]}
            store.put("returns", str(rid), ret)
        return JSONResponse(ret, status_code=201)

    @app.get(f"{V}/return")
    def list_returns(request: Request, ReferenceIds: str | None = None, Limit: int = 50):  # noqa: N803
        if (err := denied(request)) is not None:
            return err
        refs = set(ReferenceIds.split(",")) if ReferenceIds else None
        rows = [r for r in store.collection("returns").values() if refs is None or r["reference_id"] in refs]
        return {"items": rows[:max(1, min(Limit, 250))], "first": None, "last": None, "next": None, "prev": None}

    @app.post(f"{V}/return/{{return_id}}:cancel")
    def cancel_return(return_id: str, request: Request):
        if (err := denied(request)) is not None:
            return err
        with store.lock:
            ret = store.get("returns", return_id)
            if ret is None:
                return JSONResponse({}, status_code=404)
            if ret["status"] != "AwaitingArrival":
                return bad("return", f"Return {return_id} is {ret['status']}; only a return awaiting arrival can "
                           "be cancelled.")
            ret["status"], ret["cancelled_date"] = "Cancelled", iso()
        return Response(content=b"{}", media_type="application/json")

    return app
