"""Shopify Admin REST sandbox: the endpoints adapters/marketplace/shopify_admin.py calls, answering in Shopify's
published shapes (the fulfillment and refund records have the fields of the fulfillments/create and
refunds/create sample payloads), with fault injection and signed webhooks.

Seed an order with `POST /_admin/orders` (a Shopify order JSON, e.g. the orders/create sample; seeding an id again
starts that order afresh, without fulfillments, payments or refunds); `?notify=true` also sends it to the platform as a signed `orders/create` webhook. Creating a fulfillment sends a signed
`fulfillments/create` webhook, creating a refund a signed `refunds/create` (as Shopify does for every refund,
including those an app creates). Ids are kept as exact integers (they exceed 2^53).

Shopify Payments payouts and their balance transactions are seeded with `POST /_admin/payouts` (see the section
below) and listed with Link-header pagination.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sandbox.common import StateStore, iso_z, make_app
from sandbox.faults import FaultInjector, WebhookDelivery, deliver_webhooks, install_faults

PREFIX = "/admin/api/{version}"
LOCATION_ID = 655441491
SHOP_DOMAIN = "retailflow-sandbox.myshopify.com"
# the webhook payload version it announces (the Admin routes serve any {version}): a stable version Shopify
# supports in Dec 2026 (2026-10, until 2027-10-01), the platform's default `shopify_admin_api_version`
WEBHOOK_API_VERSION = "2026-10"


def _err(status: int, errors: Any) -> JSONResponse:
    return JSONResponse({"errors": errors}, status_code=status)


def _money_set(amount: Decimal | str, currency: str) -> dict[str, Any]:
    return {"shop_money": {"amount": str(amount), "currency_code": currency},
            "presentment_money": {"amount": str(amount), "currency_code": currency}}


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def create_app(*, access_token: str | None = None, webhook_url: str | None = None, webhook_secret: str | None = None,
               injector: FaultInjector | None = None) -> FastAPI:
    if access_token is None or webhook_url is None or webhook_secret is None:
        from runtime.settings import get_settings

        s = get_settings()
        access_token = access_token or s.shopify_admin_access_token.get_secret_value()
        webhook_url = webhook_url if webhook_url is not None else s.effective_api_base_url + "/webhooks/shopify"
        webhook_secret = webhook_secret or s.shopify_webhook_secret.get_secret_value()
    app = make_app("Shopify Admin API", "Orders, fulfillment orders, fulfillments, refunds, inventory levels, "
                   "Shopify Payments payouts and balance transactions.")
    store = StateStore(id_start=5_000_000_000_000_000_001)  # above 2^53, like Shopify's ids
    injector = install_faults(app, injector or FaultInjector(), reset_hooks=[store.reset])
    app.state.store = store
    app.state.webhook_url = webhook_url
    app.state.webhooks_sent: list[dict[str, Any]] = []
    tasks: set[asyncio.Task] = set()

    def authorized(request: Request) -> bool:
        return hmac.compare_digest(request.headers.get("x-shopify-access-token", ""), access_token)

    def unauthorized() -> JSONResponse:
        return _err(401, "[API] Invalid API key or access token (unrecognized login or wrong password)")

    async def send_webhook(topic: str, payload: dict[str, Any]) -> None:
        url = app.state.webhook_url
        if not url:
            return
        body = json.dumps(payload, default=str).encode()
        wid = f"sandbox-{store.ids.next_int('webhook')}"
        headers = {"X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": sign(body, webhook_secret),
                   "X-Shopify-Shop-Domain": SHOP_DOMAIN, "X-Shopify-API-Version": WEBHOOK_API_VERSION,
                   "X-Shopify-Webhook-Id": wid, "X-Shopify-Triggered-At": iso_z(millis=True)}
        results = await deliver_webhooks([WebhookDelivery(url, body, headers, topic)], injector=injector)
        app.state.webhooks_sent.extend({"topic": topic, "webhook_id": wid, "status": r.status} for r in results)

    def later(coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def order_or_404(order_id: int) -> dict[str, Any] | None:
        return store.get("orders", str(order_id))

    # -- admin (seeding) ---------------------------------------------------------------------------------------
    @app.post("/_admin/orders", tags=["sandbox admin"], status_code=201)
    async def seed_order(request: Request, notify: bool = False) -> dict:
        raw = await request.body()
        order = json.loads(raw)
        if not isinstance(order, dict) or not isinstance(order.get("id"), int) or not order.get("line_items"):
            return _err(422, {"order": ["needs an integer id and line_items"]})
        with store.lock:
            for kind in ("fulfillment_orders", "fulfillments", "transactions", "refunds"):  # seeded again: fresh
                records = store.collection(kind)
                for key in [k for k, r in records.items() if r.get("order_id") == order["id"]]:
                    del records[key]
            order = {**order, "cancelled_at": None, "tags": order.get("tags") or ""}
            store.put("orders", str(order["id"]), order)
            fo_id = store.ids.next_int()
            store.put("fulfillment_orders", str(fo_id), {
                "id": fo_id, "shop_id": 1, "order_id": order["id"], "assigned_location_id": LOCATION_ID,
                "request_status": "unsubmitted", "status": "open", "supported_actions": ["create_fulfillment"],
                "destination": None, "fulfill_at": None, "international_duties": None, "fulfillment_holds": [],
                "delivery_method": None, "created_at": iso_z(), "updated_at": iso_z(),
                "line_items": [{"id": store.ids.next_int(), "shop_id": 1, "fulfillment_order_id": fo_id,
                                "quantity": li["quantity"], "line_item_id": li["id"],
                                "inventory_item_id": li.get("variant_id"), "fulfillable_quantity": li["quantity"],
                                "variant_id": li.get("variant_id")} for li in order["line_items"]]})
            tid = store.ids.next_int()
            store.put("transactions", str(tid), {
                "id": tid, "order_id": order["id"], "kind": "sale", "gateway": "bogus", "status": "success",
                "message": "Bogus Gateway: Forced success", "created_at": order.get("created_at") or iso_z(),
                "test": True, "authorization": "53433", "location_id": None, "user_id": None, "parent_id": None,
                "processed_at": order.get("created_at") or iso_z(), "device_id": None, "error_code": None,
                "source_name": "web", "receipt": {}, "amount": str(order.get("total_price") or "0.00"),
                "currency": order.get("currency"), "payment_id": f"{order.get('name', '')}.1",
                "manual_payment_gateway": False, "amount_rounding": None,
                # "XXX" (no currency) is what Shopify's published transactions carry for a settled amount
                "total_unsettled_set": {"presentment_money": {"amount": "0.0", "currency": "XXX"},
                                        "shop_money": {"amount": "0.0", "currency": "XXX"}},
                "admin_graphql_api_id": f"gid://shopify/OrderTransaction/{tid}"})
            for li in order["line_items"]:
                if li.get("sku") and not store.find("variants", sku=li["sku"]):
                    _add_variant(li["sku"], li.get("product_id"))
        if notify:
            await send_webhook("orders/create", order)
        return {"order_id": order["id"]}

    def _add_variant(sku: str, product_id: int | None = None) -> dict[str, Any]:
        pid = product_id or store.ids.next_int()
        vid, iid = store.ids.next_int(), store.ids.next_int()
        variant = {"id": vid, "product_id": pid, "sku": sku, "inventory_item_id": iid,
                   "inventory_quantity": 0, "admin_graphql_api_id": f"gid://shopify/ProductVariant/{vid}"}
        store.put("variants", str(vid), variant)
        product = store.get("products", str(pid)) or store.put("products", str(pid), {
            "id": pid, "title": sku, "variants": [], "admin_graphql_api_id": f"gid://shopify/Product/{pid}"})
        product["variants"].append(variant)
        return variant

    @app.post("/_admin/products", tags=["sandbox admin"], status_code=201)
    def seed_products(skus: list[str]) -> dict:
        with store.lock:
            return {"variants": [(store.find("variants", sku=s) or [_add_variant(s)])[0] for s in skus]}

    @app.get("/_admin/inventory_levels", tags=["sandbox admin"])
    def all_levels() -> dict:
        return {"inventory_levels": list(store.collection("inventory_levels").values())}

    @app.get("/_admin/webhooks", tags=["sandbox admin"])
    def webhooks_sent() -> dict:
        return {"webhooks": app.state.webhooks_sent}

    # -- orders ------------------------------------------------------------------------------------------------
    @app.get(PREFIX + "/orders/{order_id}.json")
    def get_order(version: str, order_id: int, request: Request, fields: str | None = None):
        if not authorized(request):
            return unauthorized()
        order = order_or_404(order_id)
        if order is None:
            return _err(404, "Not Found")
        if fields:
            wanted = {f.strip() for f in fields.split(",")}
            order = {k: v for k, v in order.items() if k in wanted}
        return {"order": order}

    @app.put(PREFIX + "/orders/{order_id}.json")
    async def update_order(version: str, order_id: int, request: Request):
        if not authorized(request):
            return unauthorized()
        order = order_or_404(order_id)
        if order is None:
            return _err(404, "Not Found")
        body = await request.json()
        changes = body.get("order") if isinstance(body, dict) else None
        if not isinstance(changes, dict):
            return _err(400, {"order": "Required parameter missing or invalid"})
        with store.lock:
            for key in ("tags", "note", "email"):
                if key in changes:
                    order[key] = changes[key]
        return {"order": order}

    @app.post(PREFIX + "/orders/{order_id}/cancel.json")
    async def cancel_order(version: str, order_id: int, request: Request):
        if not authorized(request):
            return unauthorized()
        order = order_or_404(order_id)
        if order is None:
            return _err(404, "Not Found")
        body = await request.json() if await request.body() else {}
        with store.lock:
            if order.get("cancelled_at"):
                return _err(422, {"base": ["Cannot cancel an order that has already been cancelled"]})
            if any(f.get("status") == "success" for f in store.find("fulfillments", order_id=order_id)):
                return _err(422, {"base": ["Cannot cancel an order that has fulfilled line items"]})
            order["cancelled_at"] = iso_z()
            order["cancel_reason"] = body.get("reason") or "other"
            for fo in store.find("fulfillment_orders", order_id=order_id):
                fo["status"] = "closed"
        return {"notice": "Order has been cancelled", "order": order}

    # -- fulfillment -------------------------------------------------------------------------------------------
    @app.get(PREFIX + "/orders/{order_id}/fulfillment_orders.json")
    def fulfillment_orders(version: str, order_id: int, request: Request):
        if not authorized(request):
            return unauthorized()
        if order_or_404(order_id) is None:
            return _err(404, "Not Found")
        return {"fulfillment_orders": store.find("fulfillment_orders", order_id=order_id)}

    @app.get(PREFIX + "/orders/{order_id}/fulfillments.json")
    def list_fulfillments(version: str, order_id: int, request: Request, limit: int = 50, page_info: str | None = None):
        if not authorized(request):
            return unauthorized()
        if order_or_404(order_id) is None:
            return _err(404, "Not Found")
        return _paged(request, store.find("fulfillments", order_id=order_id), "fulfillments", limit, page_info)

    @app.post(PREFIX + "/fulfillments.json", status_code=201)
    async def create_fulfillment(version: str, request: Request):
        if not authorized(request):
            return unauthorized()
        body = await request.json()
        f = body.get("fulfillment") if isinstance(body, dict) else None
        groups = f.get("line_items_by_fulfillment_order") if isinstance(f, dict) else None
        if not groups or not isinstance(groups, list):
            return _err(400, {"fulfillment": "Required parameter missing or invalid"})
        with store.lock:
            shipped: list[tuple[dict, int]] = []
            order = None
            for g in groups:
                fo = store.get("fulfillment_orders", str(g.get("fulfillment_order_id")))
                if fo is None:
                    return _err(404, "Not Found")
                if fo["status"] not in ("open", "in_progress"):
                    return _err(422, {"base": [f"Fulfillment order {fo['id']} has an unfulfillable status= {fo['status']}."]})
                order = order_or_404(fo["order_id"])
                by_id = {li["id"]: li for li in fo["line_items"]}
                for item in g.get("fulfillment_order_line_items") or [{"id": i, "quantity": li["fulfillable_quantity"]}
                                                                      for i, li in by_id.items()]:
                    li = by_id.get(item.get("id"))
                    qty = item.get("quantity")
                    if li is None or not isinstance(qty, int) or qty <= 0 or qty > li["fulfillable_quantity"]:
                        return _err(422, {"base": ["Invalid fulfillment order line item quantity requested."]})
                    shipped.append((li, qty))
            for li, qty in shipped:
                li["fulfillable_quantity"] -= qty
            for g in groups:
                fo = store.get("fulfillment_orders", str(g["fulfillment_order_id"]))
                fo["status"] = "closed" if all(x["fulfillable_quantity"] == 0 for x in fo["line_items"]) \
                    else "in_progress"
            tracking = f.get("tracking_info") or {}
            fid = store.ids.next_int()
            order_lines = {li["id"]: li for li in order["line_items"]}
            n = len(store.find("fulfillments", order_id=order["id"])) + 1
            record = {
                "id": fid, "order_id": order["id"], "status": "success", "created_at": iso_z(), "service": "manual",
                "updated_at": iso_z(), "tracking_company": tracking.get("company"), "shipment_status": None,
                "location_id": LOCATION_ID, "origin_address": None, "email": order.get("email"),
                "destination": order.get("shipping_address"),
                "line_items": [{**order_lines[li["line_item_id"]], "quantity": qty,
                                "fulfillable_quantity": li["fulfillable_quantity"], "fulfillment_status": "fulfilled"}
                               for li, qty in shipped],
                "tracking_number": tracking.get("number"),
                "tracking_numbers": [tracking["number"]] if tracking.get("number") else [],
                "tracking_url": tracking.get("url"), "tracking_urls": [tracking["url"]] if tracking.get("url") else [],
                "receipt": {}, "name": f"{order.get('name') or '#' + str(order['id'])}.{n}",
                "admin_graphql_api_id": f"gid://shopify/Fulfillment/{fid}",
            }
            store.put("fulfillments", str(fid), record)
        later(send_webhook("fulfillments/create", record))
        return JSONResponse({"fulfillment": record}, status_code=201)

    # -- refunds -----------------------------------------------------------------------------------------------
    @app.get(PREFIX + "/orders/{order_id}/refunds.json")
    def list_refunds(version: str, order_id: int, request: Request, limit: int = 50, page_info: str | None = None):
        if not authorized(request):
            return unauthorized()
        if order_or_404(order_id) is None:
            return _err(404, "Not Found")
        return _paged(request, store.find("refunds", order_id=order_id), "refunds", limit, page_info)

    @app.get(PREFIX + "/orders/{order_id}/transactions.json")
    def list_transactions(version: str, order_id: int, request: Request):
        if not authorized(request):
            return unauthorized()
        if order_or_404(order_id) is None:
            return _err(404, "Not Found")
        return {"transactions": store.find("transactions", order_id=order_id)}

    @app.post(PREFIX + "/orders/{order_id}/refunds.json", status_code=201)
    async def create_refund(version: str, order_id: int, request: Request):
        if not authorized(request):
            return unauthorized()
        order = order_or_404(order_id)
        if order is None:
            return _err(404, "Not Found")
        body = json.loads(await request.body(), parse_float=Decimal)
        r = body.get("refund") if isinstance(body, dict) else None
        if not isinstance(r, dict):
            return _err(400, {"refund": "Required parameter missing or invalid"})
        currency = order.get("currency") or "USD"
        with store.lock:
            lines = {li["id"]: li for li in order["line_items"]}
            refunded = {}
            for prev in store.find("refunds", order_id=order_id):
                for rli in prev["refund_line_items"]:
                    refunded[rli["line_item_id"]] = refunded.get(rli["line_item_id"], 0) + rli["quantity"]
            rlis = []
            for item in r.get("refund_line_items") or []:
                li = lines.get(item.get("line_item_id"))
                qty = item.get("quantity")
                if li is None:
                    return _err(422, {"refund_line_items": ["line_item_id is not on the order"]})
                if not isinstance(qty, int) or qty <= 0 or qty + refunded.get(li["id"], 0) > li["quantity"]:
                    return _err(422, {"refund_line_items.quantity": ["cannot refund more items than were purchased"]})
                # Shopify refunds the units' share of the line after its discounts, and of its tax lines
                cent, ordered = Decimal("0.01"), li["quantity"]
                discounts = sum((Decimal(str(d.get("amount") or 0)) for d in li.get("discount_allocations") or []),
                                Decimal(0))
                line_tax = sum((Decimal(str(t.get("price") or 0)) for t in li.get("tax_lines") or []), Decimal(0))
                subtotal = ((Decimal(str(li["price"])) * ordered - discounts) * qty / ordered).quantize(cent)
                tax = (line_tax * qty / ordered).quantize(cent)
                rlis.append({"id": store.ids.next_int(), "quantity": qty, "line_item_id": li["id"],
                             "location_id": None, "restock_type": item.get("restock_type") or "no_restock",
                             "subtotal": float(subtotal), "total_tax": float(tax),
                             "subtotal_set": _money_set(subtotal, currency),
                             "total_tax_set": _money_set(tax, currency), "line_item": li})
            sale = {t["id"]: t for t in store.find("transactions", order_id=order_id) if t["kind"] in ("sale", "capture")}
            paid_back = sum((Decimal(t["amount"]) for t in store.find("transactions", order_id=order_id, kind="refund")),
                            Decimal(0))
            captured = sum((Decimal(t["amount"]) for t in sale.values()), Decimal(0))
            rid = store.ids.next_int()
            txs = []
            for t in r.get("transactions") or []:
                parent = sale.get(t.get("parent_id"))
                try:
                    amount = Decimal(str(t.get("amount")))
                except ArithmeticError:
                    return _err(422, {"transactions.amount": ["is not a number"]})
                if parent is None or t.get("kind") != "refund":
                    return _err(422, {"transactions": ["must be kind refund with the parent_id of a sale or capture"]})
                if amount <= 0 or amount + paid_back > captured:
                    return _err(422, {"base": [f"Refund amount {amount} exceeds the refundable amount "
                                               f"{captured - paid_back}"]})
                paid_back += amount
                tid = store.ids.next_int()
                tx = {**parent, "id": tid, "kind": "refund", "parent_id": parent["id"], "amount": str(amount),
                      "message": "Bogus Gateway: Forced success", "created_at": iso_z(), "processed_at": iso_z(),
                      "admin_graphql_api_id": f"gid://shopify/OrderTransaction/{tid}"}
                store.put("transactions", str(tid), tx)
                txs.append(tx)
            record = {
                "id": rid, "order_id": order_id, "created_at": iso_z(), "note": r.get("note"), "user_id": None,
                "processed_at": iso_z(), "duties": [], "total_duties_set": _money_set("0.00", currency),
                "return": None, "refund_shipping_lines": [], "restock": False,
                "admin_graphql_api_id": f"gid://shopify/Refund/{rid}", "order_adjustments": [],
                "refund_line_items": rlis, "transactions": txs,
            }
            store.put("refunds", str(rid), record)
        later(send_webhook("refunds/create", record))  # Shopify notifies every refund, the app's own too
        return Response(json.dumps({"refund": record}, default=str), status_code=201, media_type="application/json")

    # -- inventory ---------------------------------------------------------------------------------------------
    @app.get(PREFIX + "/products.json")
    def list_products(version: str, request: Request, limit: int = 50, page_info: str | None = None,
                      fields: str | None = None):
        if not authorized(request):
            return unauthorized()
        return _paged(request, list(store.collection("products").values()), "products", limit, page_info)

    @app.get(PREFIX + "/locations.json")
    def locations(version: str, request: Request):
        if not authorized(request):
            return unauthorized()
        return {"locations": [{"id": LOCATION_ID, "name": "Main warehouse", "active": True, "country_code": "US",
                               "admin_graphql_api_id": f"gid://shopify/Location/{LOCATION_ID}"}]}

    @app.post(PREFIX + "/inventory_levels/set.json")
    async def set_level(version: str, request: Request):
        if not authorized(request):
            return unauthorized()
        body = await request.json()
        loc, item, available = body.get("location_id"), body.get("inventory_item_id"), body.get("available")
        if loc != LOCATION_ID:
            return _err(422, {"location_id": ["is not a location of this shop"]})
        if not isinstance(available, int):
            return _err(422, {"available": ["must be an integer"]})
        if not store.find("variants", inventory_item_id=item):
            return _err(404, "Not Found")
        level = {"inventory_item_id": item, "location_id": loc, "available": available, "updated_at": iso_z(),
                 "admin_graphql_api_id": f"gid://shopify/InventoryLevel/{loc}?inventory_item_id={item}"}
        store.put("inventory_levels", f"{loc}:{item}", level)
        return {"inventory_level": level}

    # -- Shopify Payments: payouts and balance transactions ------------------------------------------------------
    # Seeded with `POST /_admin/payouts` and a report-file-shaped body `{"payout": {...}, "transactions": [...]}`
    # (the published REST shapes: tests/fixtures/shopify/rest_*_shopify_api_js_2026-07.json); seeding an id again
    # replaces that payout and its transactions. Lists paginate like Shopify: a `Link: <…page_info=…>; rel="next"`
    # header whose cursor carries the filters, and a 400 when filters are sent next to `page_info`.
    @app.post("/_admin/payouts", tags=["sandbox admin"], status_code=201)
    async def seed_payout(request: Request):
        body = json.loads(await request.body(), parse_float=Decimal)
        payout = body.get("payout") if isinstance(body, dict) else None
        txs = body.get("transactions") if isinstance(body, dict) else None
        if not isinstance(payout, dict) or not isinstance(payout.get("id"), int | str) or not isinstance(txs, list):
            return _err(422, {"payout": ["needs a payout object with an id and a transactions list"]})
        with store.lock:
            pid = str(payout["id"])
            records = store.collection("balance_transactions")
            for key in [k for k, t in records.items() if str(t.get("payout_id")) == pid]:
                del records[key]
            store.put("payouts", pid, payout)
            for t in txs:
                store.put("balance_transactions", str(t["id"]), t)
        return JSONResponse({"payout_id": payout["id"]}, status_code=201)

    def _payout_filter(query: dict[str, Any]):
        def keep(p: dict[str, Any]) -> bool:
            d = str(p.get("date"))
            return ((not query.get("date_min") or d >= query["date_min"])
                    and (not query.get("date_max") or d <= query["date_max"])
                    and (not query.get("date") or d == query["date"])
                    and (not query.get("status") or p.get("status") == query["status"])
                    and (not query.get("since_id") or int(p["id"]) > int(query["since_id"]))
                    and (not query.get("last_id") or int(p["id"]) < int(query["last_id"])))
        return keep

    PAYOUT_FILTERS = ("since_id", "last_id", "date_min", "date_max", "date", "status")

    @app.get(PREFIX + "/shopify_payments/payouts.json")
    def list_payouts(version: str, request: Request, limit: int = 50, page_info: str | None = None):
        if not authorized(request):
            return unauthorized()
        query = {k: request.query_params[k] for k in PAYOUT_FILTERS if request.query_params.get(k)}
        cursor = _cursor(page_info, query)
        if isinstance(cursor, JSONResponse):
            return cursor
        start, query = cursor
        records = sorted((p for p in store.collection("payouts").values() if _payout_filter(query)(p)),
                         key=lambda p: (str(p.get("date")), int(p["id"])), reverse=True)  # most recent first
        return _page(request, records, "payouts", limit, start, query)

    @app.get(PREFIX + "/shopify_payments/payouts/{payout_id}.json")
    def get_payout(version: str, payout_id: int, request: Request):
        if not authorized(request):
            return unauthorized()
        payout = store.get("payouts", str(payout_id))
        return {"payout": payout} if payout is not None else _err(404, "Not Found")

    @app.get(PREFIX + "/shopify_payments/balance/transactions.json")
    def list_balance_transactions(version: str, request: Request, limit: int = 50, page_info: str | None = None):
        if not authorized(request):
            return unauthorized()
        query = {k: request.query_params[k] for k in ("payout_id", "payout_status", "test")
                 if request.query_params.get(k)}
        cursor = _cursor(page_info, query)
        if isinstance(cursor, JSONResponse):
            return cursor
        start, query = cursor
        records = [t for t in store.collection("balance_transactions").values()
                   if (not query.get("payout_id") or str(t.get("payout_id")) == query["payout_id"])
                   and (not query.get("payout_status") or t.get("payout_status") == query["payout_status"])]
        return _page(request, records, "transactions", limit, start, query)

    def _cursor(page_info: str | None, query: dict[str, str]):
        """(offset, filters) of a request: from its `page_info` cursor, else offset 0 and its own filters."""
        if not page_info:
            return 0, query
        if query:
            return _err(400, {"page_info": "page_info cannot be combined with other filters than limit and "
                                           "fields"})
        try:
            state = json.loads(base64.urlsafe_b64decode(page_info.encode()).decode())
            return int(state["o"]), {str(k): str(v) for k, v in state["q"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            return _err(400, {"page_info": "Invalid value."})

    def _page(request: Request, records: list[dict], key: str, limit: int, start: int, query: dict[str, str]):
        limit = max(1, min(limit, 250))
        page = records[start:start + limit]
        headers = {}
        if start + limit < len(records):
            cursor = base64.urlsafe_b64encode(json.dumps({"o": start + limit, "q": query}).encode()).decode()
            headers["Link"] = f'<{request.url.replace(query=f"limit={limit}&page_info={cursor}")}>; rel="next"'
        return Response(json.dumps({key: page}, default=str), media_type="application/json", headers=headers)

    def _paged(request: Request, records: list[dict], key: str, limit: int, page_info: str | None):
        limit = max(1, min(limit, 250))
        try:
            start = int(base64.urlsafe_b64decode(page_info.encode()).decode()) if page_info else 0
        except ValueError:
            return _err(400, {"page_info": "Invalid value."})
        page = records[start:start + limit]
        headers = {}
        if start + limit < len(records):
            cursor = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
            url = request.url.replace(query=f"limit={limit}&page_info={cursor}")
            headers["Link"] = f'<{url}>; rel="next"'
        return JSONResponse({key: page}, headers=headers)

    return app
