"""Shopify Admin REST sandbox: the endpoints adapters/marketplace/shopify_admin.py calls, answering in Shopify's
published shapes (the fulfillment and refund records have the fields of the fulfillments/create and
refunds/create sample payloads), with fault injection and signed webhooks.

Seed an order with `POST /_admin/orders` (a Shopify order JSON, e.g. the orders/create sample; seeding an id again
starts that order afresh, without fulfillments, payments or refunds); `?notify=true` also sends it to the platform as a signed `orders/create` webhook. Creating a fulfillment sends a signed
`fulfillments/create` webhook, creating a refund a signed `refunds/create` (as Shopify does for every refund,
including those an app creates). Ids are kept as exact integers (they exceed 2^53).

Shopify Payments payouts and their balance transactions are seeded with `POST /_admin/payouts` (see the section
below) and listed with Link-header pagination.

The GraphQL Admin API (`POST /admin/api/{version}/graphql.json`, sandbox/shopify_graphql.py) works over the same
state through the shared operations below (`app.state.shop`): a fulfillment, refund, cancel, tag or inventory write
made over GraphQL is the REST one, webhooks included. Access tokens: any in `app.state.access_tokens` (the
configured one to start with; OAuth-issued ones can be added).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sandbox.common import StateStore, iso_z, make_app
from sandbox.faults import FaultInjector, WebhookDelivery, deliver_webhooks, install_faults
from sandbox.shopify_graphql import install_graphql
from sandbox.shopify_oauth import AccessTokens, install_oauth

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


class Refused(Exception):
    """A request Shopify refuses: `status` and `errors` are the REST answer; `field`, `message` and `code` the
    GraphQL userError of the same refusal."""

    def __init__(self, status: int, errors: Any, *, field: list[str] | None = None, code: str | None = None) -> None:
        self.status, self.errors, self.field, self.code = status, errors, field, code
        if isinstance(errors, dict):
            first = next(iter(errors.values()), "")
            self.message = str(first[0] if isinstance(first, list) and first else first)
        else:
            self.message = str(errors)
        super().__init__(self.message)

    def response(self) -> JSONResponse:
        return _err(self.status, self.errors)


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def create_app(*, access_token: str | None = None, webhook_url: str | None = None, webhook_secret: str | None = None,
               injector: FaultInjector | None = None, client_id: str | None = None) -> FastAPI:
    """`webhook_secret` is the app's client secret (Shopify signs webhooks and OAuth redirects with it);
    `client_id` the app's client id its OAuth endpoints accept."""
    if access_token is None or webhook_url is None or webhook_secret is None or client_id is None:
        from runtime.settings import get_settings

        s = get_settings()
        access_token = access_token or s.shopify_admin_access_token.get_secret_value()
        webhook_url = webhook_url if webhook_url is not None else s.effective_api_base_url + "/webhooks/shopify"
        webhook_secret = webhook_secret or s.shopify_webhook_secret.get_secret_value()
        client_id = client_id or s.shopify_app_client_id
    app = make_app("Shopify Admin API", "Orders, fulfillment orders, fulfillments, refunds, inventory levels, "
                   "Shopify Payments payouts and balance transactions.")
    store = StateStore(id_start=5_000_000_000_000_000_001)  # above 2^53, like Shopify's ids
    injector = install_faults(app, injector or FaultInjector(), reset_hooks=[store.reset])
    app.state.store = store
    app.state.webhook_url = webhook_url
    app.state.webhooks_sent: list[dict[str, Any]] = []
    app.state.access_tokens = AccessTokens({access_token})  # and those the OAuth endpoints issue, until they expire
    install_oauth(app, tokens=app.state.access_tokens, shop=SHOP_DOMAIN, client_id=client_id,
                  client_secret=webhook_secret)
    tasks: set[asyncio.Task] = set()

    def authorized(request: Request) -> bool:
        given = request.headers.get("x-shopify-access-token", "")
        return any(hmac.compare_digest(given, token) for token in list(app.state.access_tokens))

    def unauthorized() -> JSONResponse:
        return _err(401, "[API] Invalid API key or access token (unrecognized login or wrong password)")

    async def send_webhook(topic: str, payload: dict[str, Any], *, retries: int = 0) -> int | None:
        """Send a signed webhook; with `retries`, a delivery the receiver did not answer 2xx is sent again with
        the same webhook id after 1, 2, 4… seconds, as Shopify retries a failed delivery. The last status."""
        url = app.state.webhook_url
        if not url:
            return None
        body = json.dumps(payload, default=str).encode()
        wid = f"sandbox-{store.ids.next_int('webhook')}"
        headers = {"X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": sign(body, webhook_secret),
                   "X-Shopify-Shop-Domain": SHOP_DOMAIN, "X-Shopify-API-Version": WEBHOOK_API_VERSION,
                   "X-Shopify-Webhook-Id": wid, "X-Shopify-Triggered-At": iso_z(millis=True)}
        status: int | None = None
        for attempt in range(retries + 1):
            if attempt:
                await asyncio.sleep(min(2.0 ** (attempt - 1), 30.0))
            results = await deliver_webhooks([WebhookDelivery(url, body, headers, topic)], injector=injector)
            app.state.webhooks_sent.extend({"topic": topic, "webhook_id": wid, "status": r.status,
                                            "attempt": attempt + 1} for r in results)
            status = results[-1].status if results else None
            if status is not None and 200 <= status < 300:
                break
        return status

    def later(coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def order_or_404(order_id: int) -> dict[str, Any] | None:
        return store.get("orders", str(order_id))

    def touch(order: dict[str, Any]) -> None:
        order["updated_at"] = iso_z()  # Shopify moves updated_at on every change of the order

    # -- operations shared by the REST routes and the GraphQL resolvers (sandbox/shopify_graphql.py) ----------
    def cancel(order_id: int, reason: str | None = None) -> dict[str, Any]:
        with store.lock:
            order = order_or_404(order_id)
            if order is None:
                raise Refused(404, "Not Found", field=["orderId"], code="NOT_FOUND")
            if order.get("cancelled_at"):
                raise Refused(422, {"base": ["Cannot cancel an order that has already been cancelled"]},
                              field=["orderId"], code="INVALID")
            if any(f.get("status") == "success" for f in store.find("fulfillments", order_id=order_id)):
                raise Refused(422, {"base": ["Cannot cancel an order that has fulfilled line items"]},
                              field=["orderId"], code="INVALID")
            order["cancelled_at"] = iso_z()
            order["cancel_reason"] = reason or "other"
            touch(order)
            for fo in store.find("fulfillment_orders", order_id=order_id):
                fo["status"] = "closed"
            return order

    def add_tags(order_id: int, tags: list[str]) -> dict[str, Any]:
        with store.lock:
            order = order_or_404(order_id)
            if order is None:
                raise Refused(404, "Not Found", field=["id"])
            have = [t.strip() for t in str(order.get("tags") or "").split(",") if t.strip()]
            order["tags"] = ", ".join(have + [t.strip() for t in tags if t.strip() and t.strip() not in have])
            touch(order)
            return order

    def fulfil(groups: list[dict[str, Any]], tracking: dict[str, Any] | None = None) -> dict[str, Any]:
        """A fulfillment of fulfillment order lines (`line_items_by_fulfillment_order`, REST shape with integer
        ids); sends the signed fulfillments/create webhook."""
        with store.lock:
            shipped: list[tuple[dict, int]] = []
            order = None
            for i, g in enumerate(groups):
                fo = store.get("fulfillment_orders", str(g.get("fulfillment_order_id")))
                if fo is None:
                    raise Refused(404, "Not Found", field=["fulfillment", "lineItemsByFulfillmentOrder", str(i),
                                                           "fulfillmentOrderId"])
                if fo["status"] not in ("open", "in_progress"):
                    raise Refused(422, {"base": [f"Fulfillment order {fo['id']} has an unfulfillable status= "
                                                 f"{fo['status']}."]}, field=["fulfillment"])
                order = order_or_404(fo["order_id"])
                by_id = {li["id"]: li for li in fo["line_items"]}
                for item in g.get("fulfillment_order_line_items") or [{"id": i, "quantity": li["fulfillable_quantity"]}
                                                                      for i, li in by_id.items()]:
                    li = by_id.get(item.get("id"))
                    qty = item.get("quantity")
                    if li is None or not isinstance(qty, int) or qty <= 0 or qty > li["fulfillable_quantity"]:
                        raise Refused(422, {"base": ["Invalid fulfillment order line item quantity requested."]},
                                      field=["fulfillment"])
                    shipped.append((li, qty))
            for li, qty in shipped:
                li["fulfillable_quantity"] -= qty
            for g in groups:
                fo = store.get("fulfillment_orders", str(g["fulfillment_order_id"]))
                fo["status"] = "closed" if all(x["fulfillable_quantity"] == 0 for x in fo["line_items"]) \
                    else "in_progress"
                fo["updated_at"] = iso_z()
            tracking = tracking or {}
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
            touch(order)
        later(send_webhook("fulfillments/create", record))
        return record

    def line_refund(li: dict[str, Any], qty: int) -> tuple[Decimal, Decimal]:
        """What refunding `qty` units of an order line pays back: the units' share of the line after its
        discounts, and of its tax lines (as Shopify computes it)."""
        cent, ordered = Decimal("0.01"), li["quantity"]
        discounts = sum((Decimal(str(d.get("amount") or 0)) for d in li.get("discount_allocations") or []),
                        Decimal(0))
        line_tax = sum((Decimal(str(t.get("price") or 0)) for t in li.get("tax_lines") or []), Decimal(0))
        subtotal = ((Decimal(str(li["price"])) * ordered - discounts) * qty / ordered).quantize(cent)
        return subtotal, (line_tax * qty / ordered).quantize(cent)

    def refunded_quantities(order_id: int) -> dict[int, int]:
        refunded: dict[int, int] = {}
        for prev in store.find("refunds", order_id=order_id):
            for rli in prev["refund_line_items"]:
                refunded[rli["line_item_id"]] = refunded.get(rli["line_item_id"], 0) + rli["quantity"]
        return refunded

    def refundable(order_id: int) -> list[tuple[dict[str, Any], Decimal]]:
        """The order's sale/capture transactions, each with what is left to refund against it."""
        with store.lock:
            txs = store.find("transactions", order_id=order_id)
            out = []
            for t in txs:
                if t["kind"] in ("sale", "capture") and t.get("status", "success") == "success":
                    back = sum((Decimal(r["amount"]) for r in txs if r["kind"] == "refund"
                                and r.get("parent_id") == t["id"]), Decimal(0))
                    out.append((t, Decimal(t["amount"]) - back))
            return out

    def refund_order(order_id: int, r: dict[str, Any]) -> dict[str, Any]:
        """A refund (REST `refund` body, integer ids); sends the signed refunds/create webhook."""
        order = order_or_404(order_id)
        if order is None:
            raise Refused(404, "Not Found", field=["orderId"])
        currency = order.get("currency") or "USD"
        with store.lock:
            lines = {li["id"]: li for li in order["line_items"]}
            refunded = refunded_quantities(order_id)
            rlis = []
            for item in r.get("refund_line_items") or []:
                li = lines.get(item.get("line_item_id"))
                qty = item.get("quantity")
                if li is None:
                    raise Refused(422, {"refund_line_items": ["line_item_id is not on the order"]},
                                  field=["refundLineItems", str(len(rlis)), "lineItemId"])
                if not isinstance(qty, int) or qty <= 0 or qty + refunded.get(li["id"], 0) > li["quantity"]:
                    raise Refused(422, {"refund_line_items.quantity": ["cannot refund more items than were "
                                                                       "purchased"]},
                                  field=["refundLineItems", str(len(rlis)), "quantity"])
                subtotal, tax = line_refund(li, qty)
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
                    raise Refused(422, {"transactions.amount": ["is not a number"]},
                                  field=["transactions", str(len(txs)), "amount"]) from None
                if parent is None or t.get("kind") != "refund":
                    raise Refused(422, {"transactions": ["must be kind refund with the parent_id of a sale or "
                                                         "capture"]}, field=["transactions", str(len(txs))])
                if amount <= 0 or amount + paid_back > captured:
                    raise Refused(422, {"base": [f"Refund amount {amount} exceeds the refundable amount "
                                                 f"{captured - paid_back}"]},
                                  field=["transactions", str(len(txs)), "amount"])
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
            touch(order)
        later(send_webhook("refunds/create", record))  # Shopify notifies every refund, the app's own too
        return record

    def set_available(item: Any, loc: Any, available: Any) -> dict[str, Any]:
        """Set the `available` quantity of an inventory item at the location (REST inventory_levels/set)."""
        if loc != LOCATION_ID:
            raise Refused(422, {"location_id": ["is not a location of this shop"]}, field=["locationId"],
                          code="INVALID_LOCATION")
        if not isinstance(available, int):
            raise Refused(422, {"available": ["must be an integer"]}, field=["quantity"])
        if not store.find("variants", inventory_item_id=item):
            raise Refused(404, "Not Found", field=["inventoryItemId"], code="INVALID_INVENTORY_ITEM")
        level = {"inventory_item_id": item, "location_id": loc, "available": available, "updated_at": iso_z(),
                 "admin_graphql_api_id": f"gid://shopify/InventoryLevel/{loc}?inventory_item_id={item}"}
        return store.put("inventory_levels", f"{loc}:{item}", level)

    app.state.shop = SimpleNamespace(
        store=store, location_id=LOCATION_ID, Refused=Refused, authorized=authorized, unauthorized=unauthorized,
        cancel=cancel, add_tags=add_tags, fulfil=fulfil, refund_order=refund_order, line_refund=line_refund,
        refunded_quantities=refunded_quantities, refundable=refundable, set_available=set_available,
        touch=touch, on_reset=injector.on_reset)

    # -- admin (seeding) ---------------------------------------------------------------------------------------
    @app.post("/_admin/orders", tags=["sandbox admin"], status_code=201)
    async def seed_order(request: Request, notify: bool = False, retries: int = 0,
                         pickup_location: int | None = None) -> dict:
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
                # pickup_location: a click-and-collect order, its fulfillment order for pick-up at that location
                "id": fo_id, "shop_id": 1, "order_id": order["id"],
                "assigned_location_id": pickup_location or LOCATION_ID,
                "request_status": "unsubmitted", "status": "open", "supported_actions": ["create_fulfillment"],
                "destination": None, "fulfill_at": None, "international_duties": None, "fulfillment_holds": [],
                "delivery_method": {"method_type": "pick_up"} if pickup_location else None,
                "created_at": iso_z(), "updated_at": iso_z(),
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
                    _add_variant(li["sku"], li.get("product_id"), li.get("price"))
        if notify:  # `retries`: redeliver a refused webhook as Shopify does (same webhook id, backing off)
            status = await send_webhook("orders/create", order, retries=min(max(retries, 0), 10))
            return {"order_id": order["id"], "webhook_status": status}
        return {"order_id": order["id"]}

    def _add_variant(sku: str, product_id: int | None = None, price: Any = None) -> dict[str, Any]:
        pid = product_id or store.ids.next_int()
        vid, iid = store.ids.next_int(), store.ids.next_int()
        variant = {"id": vid, "product_id": pid, "sku": sku, "inventory_item_id": iid,
                   "inventory_quantity": 0, "price": str(price or "0.00"), "compare_at_price": None, "admin_graphql_api_id": f"gid://shopify/ProductVariant/{vid}"}
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
            touch(order)
        return {"order": order}

    @app.post(PREFIX + "/orders/{order_id}/cancel.json")
    async def cancel_order(version: str, order_id: int, request: Request):
        if not authorized(request):
            return unauthorized()
        order = order_or_404(order_id)
        if order is None:
            return _err(404, "Not Found")
        body = await request.json() if await request.body() else {}
        try:
            order = cancel(order_id, body.get("reason"))
        except Refused as exc:
            return exc.response()
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
        try:
            record = fulfil(groups, f.get("tracking_info"))
        except Refused as exc:
            return exc.response()
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
        try:
            record = refund_order(order_id, r)
        except Refused as exc:
            return exc.response()
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
        try:
            return {"inventory_level": set_available(item, loc, available)}
        except Refused as exc:
            return exc.response()

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

    install_graphql(app, app.state.shop)
    return app
