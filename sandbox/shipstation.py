"""ShipStation V1 sandbox: `POST /orders/createorder` (create or update by orderKey), `GET /orders`,
`GET /orders/{orderId}`, `DELETE /orders/{orderId}`, `GET /shipments` (by batchId, with or without items), HTTP
Basic auth, and the SHIP_NOTIFY webhook: every order awaiting shipment is shipped after `ship_after_seconds`
(`POST /_admin/ship/{orderId}` ships one at once), and `{"resource_url", "resource_type": "SHIP_NOTIFY"}` is
POSTed to the webhook URL with the fault injector's duplicate / out-of-order / latency settings.
Shipments have the fields of ShipStation's documented shipment example; times are Pacific, without an offset.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sandbox.common import StateStore, make_app, utcnow
from sandbox.faults import FaultInjector, WebhookDelivery, deliver_webhooks, install_faults

PACIFIC = ZoneInfo("America/Los_Angeles")


def pacific(dt: datetime | None = None) -> str:
    return (dt or utcnow()).astimezone(PACIFIC).replace(tzinfo=None).isoformat(timespec="microseconds") + "0"


def create_app(*, api_key: str | None = None, api_secret: str | None = None, webhook_url: str | None = None,
               ship_after_seconds: float | None = 5.0, injector: FaultInjector | None = None) -> FastAPI:
    if api_key is None or api_secret is None or webhook_url is None:
        from runtime.settings import get_settings

        s = get_settings()
        api_key = api_key or s.shipstation_api_key.get_secret_value()
        api_secret = api_secret or s.shipstation_api_secret.get_secret_value()
        if webhook_url is None:
            token = s.shipstation_webhook_token.get_secret_value() if s.shipstation_webhook_token else None
            webhook_url = s.effective_api_base_url + "/webhooks/shipstation" + (f"?token={token}" if token else "")
    app = make_app("ShipStation API (V1)", "Orders, shipments and the SHIP_NOTIFY webhook.")
    store = StateStore(id_start=43_945_661)
    injector = install_faults(app, injector or FaultInjector(), reset_hooks=[store.reset])
    app.state.store = store
    app.state.webhook_url = webhook_url
    app.state.ship_after_seconds = ship_after_seconds
    app.state.webhooks_sent: list[dict[str, Any]] = []
    expected = "Basic " + base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()
    tasks: set[asyncio.Task] = set()

    def denied(request: Request) -> JSONResponse | None:
        if hmac.compare_digest(request.headers.get("authorization", ""), expected):
            return None
        return JSONResponse({"Message": "Authorization has been denied for this request."}, status_code=401)

    def bad(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"Message": "The request is invalid.", "ExceptionMessage": message}, status_code=status)

    async def ship_later(order_id: int, delay: float) -> None:
        await asyncio.sleep(delay)
        await ship(order_id)

    async def ship(order_id: int) -> dict[str, Any] | None:
        with store.lock:
            order = store.get("orders", str(order_id))
            if order is None or order["orderStatus"] != "awaiting_shipment":
                return None
            batch = store.ids.next_int("batch") + 190_671_331
            sid = store.ids.next_int("shipment") + 33_974_373
            now = utcnow()
            shipment = {
                "shipmentId": sid, "orderId": order["orderId"], "orderKey": order["orderKey"], "userId": None,
                "orderNumber": order["orderNumber"], "createDate": pacific(now), "shipDate": pacific(now)[:10],
                "shipmentCost": 1.93, "insuranceCost": 0, "trackingNumber": f"94001118995617{sid:08d}",
                "isReturnLabel": False, "batchNumber": str(batch), "carrierCode": "stamps_com",
                "serviceCode": "usps_first_class_mail", "packageCode": "package", "confirmation": "delivery",
                "warehouseId": 16079, "voided": False, "voidDate": None, "marketplaceNotified": False,
                "notifyErrorMessage": None, "shipTo": order.get("shipTo"), "weight": {"value": 1, "units": "ounces"},
                "dimensions": None, "insuranceOptions": {"provider": None, "insureShipment": False, "insuredValue": 0},
                "advancedOptions": None,
                "shipmentItems": [{"orderItemId": i["orderItemId"], "lineItemKey": i.get("lineItemKey"),
                                   "sku": i.get("sku"), "name": i.get("name"), "imageUrl": None, "weight": None,
                                   "quantity": i["quantity"], "unitPrice": i.get("unitPrice"),
                                   "warehouseLocation": i.get("warehouseLocation"), "options": None,
                                   "productId": None, "fulfillmentSku": i.get("fulfillmentSku")}
                                  for i in order["items"]],
                "labelData": None, "formData": None, "_batchId": batch,
            }
            store.put("shipments", str(sid), shipment)
            order["orderStatus"] = "shipped"
            order["shipDate"] = shipment["shipDate"]
            order["modifyDate"] = pacific(now)
        if app.state.webhook_url:
            body = json.dumps({"resource_url": f"{app.state.base_url}/shipments?batchId={batch}"
                                               "&includeShipmentItems=False", "resource_type": "SHIP_NOTIFY"}).encode()
            results = await deliver_webhooks([WebhookDelivery(app.state.webhook_url, body, {}, "SHIP_NOTIFY")],
                                             injector=injector)
            app.state.webhooks_sent.extend({"batchId": batch, "status": r.status, "error": r.error} for r in results)
        return shipment

    app.state.ship = ship
    app.state.base_url = "http://127.0.0.1:8105"

    @app.middleware("http")
    async def remember_base_url(request: Request, call_next):  # noqa: ANN202
        app.state.base_url = str(request.base_url).rstrip("/")
        return await call_next(request)

    # -- admin -------------------------------------------------------------------------------------------------
    @app.post("/_admin/ship/{order_id}", tags=["sandbox admin"])
    async def ship_now(order_id: int):
        shipment = await ship(order_id)
        if shipment is None:
            return bad(f"order {order_id} is not awaiting shipment", 409)
        return {"shipmentId": shipment["shipmentId"], "batchId": shipment["_batchId"],
                "webhooks": app.state.webhooks_sent[-2:]}

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
    @app.post("/orders/createorder")
    async def create_order(request: Request):
        if (err := denied(request)) is not None:
            return err
        try:
            body = await request.json()
        except ValueError:
            return bad("body is not JSON")
        if not isinstance(body, dict) or not body.get("orderNumber") or not body.get("orderDate") \
                or body.get("orderStatus") not in ("awaiting_payment", "awaiting_shipment", "pending_fulfillment",
                                                   "shipped", "on_hold", "cancelled"):
            return bad("orderNumber, orderDate and a valid orderStatus are required")
        if not isinstance(body.get("shipTo"), dict) or not isinstance(body.get("billTo"), dict):
            return bad("shipTo and billTo are required")
        schedule = False
        with store.lock:
            existing = store.find("orders", orderKey=body["orderKey"]) if body.get("orderKey") else []
            if existing:
                order = existing[0]
                if order["orderStatus"] == "shipped" and body["orderStatus"] != "shipped":
                    return bad(f"order {order['orderId']} has shipped and cannot change")
            else:
                oid = store.ids.next_int("order")
                order = {"orderId": oid, "orderKey": body.get("orderKey") or f"sandbox-{oid}",
                         "createDate": pacific(), "shipDate": None}
                store.put("orders", str(oid), order)
            items = []
            for n, i in enumerate(body.get("items") or []):
                if not isinstance(i.get("quantity"), int) or i["quantity"] <= 0:
                    return bad(f"items[{n}].quantity must be a positive integer")
                items.append({**i, "orderItemId": i.get("orderItemId") or store.ids.next_int("item") + 56_568_664})
            was = order.get("orderStatus")
            order.update({k: v for k, v in body.items() if k not in ("orderId", "orderKey", "createDate", "items")})
            order["items"], order["modifyDate"] = items, pacific()
            schedule = order["orderStatus"] == "awaiting_shipment" and was != "awaiting_shipment"
        if schedule and app.state.ship_after_seconds is not None:
            task = asyncio.get_running_loop().create_task(ship_later(order["orderId"], app.state.ship_after_seconds))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return order

    @app.get("/orders")
    def list_orders(request: Request, orderNumber: str | None = None, orderStatus: str | None = None,  # noqa: N803
                    page: int = 1, pageSize: int = 100):  # noqa: N803
        if (err := denied(request)) is not None:
            return err
        rows = [o for o in store.collection("orders").values() if not o.get("_deleted")
                and (orderNumber is None or o.get("orderNumber") == orderNumber)
                and (orderStatus is None or o.get("orderStatus") == orderStatus)]
        return _page("orders", rows, page, pageSize)

    @app.get("/orders/{order_id}")
    def get_order(order_id: int, request: Request):
        if (err := denied(request)) is not None:
            return err
        order = store.get("orders", str(order_id))
        if order is None or order.get("_deleted"):
            return JSONResponse({"Message": "Order not found"}, status_code=404)
        return order

    @app.delete("/orders/{order_id}")
    def delete_order(order_id: int, request: Request):
        if (err := denied(request)) is not None:
            return err
        order = store.get("orders", str(order_id))
        if order is None or order.get("_deleted"):
            return JSONResponse({"Message": "Order not found"}, status_code=404)
        order["_deleted"] = True
        return {"success": True, "message": "The requested order has been deleted."}

    @app.get("/shipments")
    def list_shipments(request: Request, batchId: int | None = None, orderNumber: str | None = None,  # noqa: N803
                       includeShipmentItems: str = "false", page: int = 1, pageSize: int = 100):  # noqa: N803
        if (err := denied(request)) is not None:
            return err
        rows = [s for s in store.collection("shipments").values()
                if (batchId is None or s["_batchId"] == batchId)
                and (orderNumber is None or s["orderNumber"] == orderNumber)]
        with_items = includeShipmentItems.lower() == "true"
        rows = [{k: (v if with_items or k != "shipmentItems" else None) for k, v in s.items() if k != "_batchId"}
                for s in rows]
        return _page("shipments", rows, page, pageSize)

    def _page(key: str, rows: list[dict], page: int, page_size: int) -> dict[str, Any]:
        page_size = max(1, min(page_size, 500))
        pages = max(1, -(-len(rows) // page_size))
        start = (max(page, 1) - 1) * page_size
        return {key: [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows[start:start + page_size]],
                "total": len(rows), "page": max(page, 1), "pages": pages}

    return app
