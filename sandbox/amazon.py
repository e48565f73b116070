"""Amazon SP-API sandbox: Login with Amazon (`POST /auth/o2/token`), Orders v0 (getOrders with LastUpdatedAfter
and NextToken, getOrder, getOrderItems, getOrderAddress, confirmShipment), Orders 2026-01-01 (searchOrders with
paginationToken, getOrder with its items, `includedData` honoured: the same seeded orders, in that shape), Feeds 2021-06-30 (JSON_LISTINGS_FEED,
POST_ORDER_ACKNOWLEDGEMENT_DATA, POST_PAYMENT_ADJUSTMENT_DATA processed at once) and Reports 2021-06-30
(settlement reports), with fault injection. Errors use the SP-API envelope `{"errors": [{"code", "message"}]}`.

Seed with `POST /_admin/orders` `{"order": <getOrders row>, "items": [<OrderItem>…], "address": <Address>}`
(the published sandbox order and items are valid input) and `POST /_admin/reports` (a settlement file body), or let
`POST /_admin/settlements` settle what shipped and what was refunded since the last settlement (a V2 report).

Several sellers (one LWA app authorized by each): `create_app(sellers={<refresh token>: <seller id>})`; an access
token from a seller's refresh token sees only the orders seeded with that `"seller_id"` (as each seller's own
authorization does on SP-API); the `refresh_token` one sees the orders seeded without a seller.
"""

from __future__ import annotations

import base64
import json
import secrets
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sandbox.common import StateStore, iso_z, make_app, utcnow
from sandbox.faults import FaultInjector, install_faults


def _errors(status: int, code: str, message: str, details: str = "") -> JSONResponse:
    return JSONResponse({"errors": [{"code": code, "message": message, "details": details}]}, status_code=status)


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


V2026_DATASETS = frozenset({"BUYER", "RECIPIENT", "PROCEEDS", "EXPENSE", "PROMOTION", "CANCELLATION", "FULFILLMENT",
                            "PACKAGES", "TAX", "PAYMENT", "FULFILLMENT_ORDERS"})
_V2026_STATUS = {"PendingAvailability": "PENDING_AVAILABILITY", "Pending": "PENDING", "Unshipped": "UNSHIPPED",
                 "PartiallyShipped": "PARTIALLY_SHIPPED", "Shipped": "SHIPPED", "Canceled": "CANCELLED",
                 "Unfulfillable": "UNFULFILLABLE"}
_V2026_ADDRESS = {"Name": "name", "CompanyName": "companyName", "AddressLine1": "addressLine1",
                  "AddressLine2": "addressLine2", "AddressLine3": "addressLine3", "City": "city",
                  "County": "districtOrCounty", "StateOrRegion": "stateOrRegion", "Municipality": "municipality",
                  "PostalCode": "postalCode", "CountryCode": "countryCode", "Phone": "phone",
                  "AddressType": "addressType"}


def _money_v2026(raw: Any, negate: bool = False) -> dict[str, str] | None:
    if not isinstance(raw, dict) or raw.get("Amount") is None:
        return None
    amount = Decimal(str(raw["Amount"]))
    return {"amount": str(-amount if negate else amount), "currencyCode": raw["CurrencyCode"]}


def _sum_v2026(values: list[dict[str, str] | None]) -> dict[str, str] | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {"amount": str(sum(Decimal(v["amount"]) for v in present)), "currencyCode": present[0]["currencyCode"]}


def _item_v2026(item: dict[str, Any], included: set[str]) -> dict[str, Any]:
    """A stored (v0) OrderItem in the Orders API v2026-01-01 `OrderItem` shape (orders_2026-01-01.json)."""
    qty = int(item.get("QuantityOrdered") or 0)
    product: dict[str, Any] = {k: item[v0] for k, v0 in (("asin", "ASIN"), ("title", "Title"),
                                                          ("sellerSku", "SellerSKU")) if item.get(v0)}
    price = _money_v2026(item.get("ItemPrice"))
    if price is not None and qty:
        unit = (Decimal(price["amount"]) / qty).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        product["price"] = {"unitPrice": {"amount": str(unit), "currencyCode": price["currencyCode"]}}
    out: dict[str, Any] = {"orderItemId": item["OrderItemId"], "quantityOrdered": qty, "product": product}
    if "PROCEEDS" in included:
        breakdowns: list[dict[str, Any]] = []
        shipping = _money_v2026(item.get("ShippingPrice"))
        for kind, value in (("ITEM", price), ("SHIPPING", shipping)):
            if value is not None:
                breakdowns.append({"type": kind, "subtotal": value})
        for kind, parts, negate in (("TAX", (("ITEM", "ItemTax"), ("SHIPPING", "ShippingTax")), False),
                                    # the sign of DISCOUNT proceeds is not published: a reduction, so negative
                                    ("DISCOUNT", (("ITEM", "PromotionDiscount"), ("SHIPPING", "ShippingDiscount")),
                                     True)):
            details = [{"subtype": sub, "value": m} for sub, v0 in parts
                       if (m := _money_v2026(item.get(v0), negate)) is not None and Decimal(m["amount"])]
            if details:
                breakdowns.append({"type": kind, "subtotal": _sum_v2026([d["value"] for d in details]),
                                   "detailedBreakdowns": details})
        total = _sum_v2026([b["subtotal"] for b in breakdowns])
        out["proceeds"] = {**({"proceedsTotal": total} if total else {}), "breakdowns": breakdowns}
    if "PROMOTION" in included and item.get("PromotionIds"):
        out["promotion"] = {"breakdowns": [{"promotionId": p} for p in item["PromotionIds"]]}
    if "FULFILLMENT" in included:
        shipped = int(item.get("QuantityShipped") or 0)
        out["fulfillment"] = {"quantityFulfilled": shipped, "quantityUnfulfilled": max(qty - shipped, 0)}
    return out


def v2026_order(rec: dict[str, Any], included: set[str]) -> dict[str, Any]:
    """A stored (v0) order and its items in the Orders API v2026-01-01 `Order` shape, with the datasets that
    `includedData` asks for (no BUYER: no buyer; no RECIPIENT: no address; no FULFILLMENT: no status…)."""
    order = rec["order"]
    items = [_item_v2026(i, included) for i in rec["items"]]
    out: dict[str, Any] = {
        "orderId": order["AmazonOrderId"], "createdTime": order["PurchaseDate"],
        "lastUpdatedTime": order["LastUpdateDate"],
        "salesChannel": {"channelName": "AMAZON", "marketplaceId": order.get("MarketplaceId", "ATVPDKIKX0DER")}}
    buyer = order.get("BuyerInfo") or {}
    if "BUYER" in included and (buyer.get("BuyerEmail") or buyer.get("BuyerName")):
        out["buyer"] = {k: buyer[v0] for k, v0 in (("buyerName", "BuyerName"), ("buyerEmail", "BuyerEmail"))
                        if buyer.get(v0)}
    if "RECIPIENT" in included and isinstance(order.get("ShippingAddress"), dict):
        out["recipient"] = {"deliveryAddress": {v: order["ShippingAddress"][k] for k, v in _V2026_ADDRESS.items()
                                                if order["ShippingAddress"].get(k) not in (None, "")}}
    if "PROCEEDS" in included:
        sums: dict[str, list[dict[str, str] | None]] = {}
        for item in items:
            for b in item["proceeds"]["breakdowns"]:
                sums.setdefault(b["type"], []).append(b["subtotal"])
        out["proceeds"] = {"breakdowns": [{"type": t, "subtotal": _sum_v2026(v)} for t, v in sums.items()]}
        if (total := _money_v2026(order.get("OrderTotal"))) is not None:
            out["proceeds"] = {"grandTotal": total, **out["proceeds"]}
    if "FULFILLMENT" in included:
        out["fulfillment"] = {"fulfillmentStatus": _V2026_STATUS.get(order.get("OrderStatus") or "", "PENDING"),
                              "fulfilledBy": "AMAZON" if order.get("FulfillmentChannel") == "AFN" else "MERCHANT"}
    if "PACKAGES" in included and rec.get("packages"):
        out["packages"] = [
            {"packageReferenceId": str(p["packageReferenceId"]), "carrier": p.get("carrierName") or p["carrierCode"],
             "shipTime": p["shipDate"], **({"trackingNumber": p["trackingNumber"]} if p.get("trackingNumber") else {}),
             **({"shippingService": p["shippingMethod"]} if p.get("shippingMethod") else {}),
             "packageItems": [{"orderItemId": i["orderItemId"], "quantity": i["quantity"]}
                              for i in p["orderItems"]]} for p in rec["packages"]]
    out["orderItems"] = items
    return out


def create_app(*, client_id: str | None = None, client_secret: str | None = None, refresh_token: str | None = None,
               page_size: int = 100, items_page_size: int = 100, token_ttl: int = 3600,
               injector: FaultInjector | None = None, sellers: dict[str, str] | None = None) -> FastAPI:
    if client_id is None or client_secret is None or refresh_token is None:
        from runtime.settings import get_settings

        s = get_settings()
        client_id = client_id or s.amazon_lwa_client_id
        client_secret = client_secret or s.amazon_lwa_client_secret.get_secret_value()
        refresh_token = refresh_token or s.amazon_refresh_token.get_secret_value()
    app = make_app("Amazon Selling Partner API", "LWA, Orders v0, Feeds and Reports 2021-06-30.")
    store = StateStore(id_start=50_000_000_001)
    tokens: dict[str, datetime] = {}
    token_sellers: dict[str, str] = {}  # access token → the seller whose refresh token it came from
    sellers = dict(sellers or {})
    injector = install_faults(app, injector or FaultInjector(),
                              reset_hooks=[store.reset, tokens.clear, token_sellers.clear])
    app.state.store = store
    app.state.tokens = tokens

    def denied(request: Request) -> JSONResponse | None:
        token = request.headers.get("x-amz-access-token")
        expires = tokens.get(token or "")
        if expires is None:
            return _errors(403, "Unauthorized", "Access to requested resource is denied.",
                           "The access token you provided is revoked, malformed or invalid.")
        if expires <= utcnow():
            return _errors(403, "Unauthorized", "Access to requested resource is denied.",
                           "The access token you provided has expired.")
        return None

    def seller_of(request: Request) -> str | None:
        return token_sellers.get(request.headers.get("x-amz-access-token") or "")

    # -- LWA ---------------------------------------------------------------------------------------------------
    @app.post("/auth/o2/token")
    async def token(request: Request):
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "refresh_token":
            return JSONResponse({"error": "unsupported_grant_type", "error_description": "grant_type"}, 400)
        if form.get("client_id") != client_id or form.get("client_secret") != client_secret:
            return JSONResponse({"error": "invalid_client", "error_description": "Client authentication failed"}, 401)
        if form.get("refresh_token") != refresh_token and form.get("refresh_token") not in sellers:
            return JSONResponse({"error": "invalid_grant", "error_description": "The request has an invalid grant "
                                 "parameter : refresh_token"}, 400)
        access = f"Atza|sandbox-{secrets.token_urlsafe(16)}"
        tokens[access] = utcnow() + timedelta(seconds=token_ttl)
        if form["refresh_token"] in sellers:
            token_sellers[access] = sellers[form["refresh_token"]]
        return {"access_token": access, "refresh_token": form["refresh_token"], "token_type": "bearer",
                "expires_in": token_ttl}

    # -- admin -------------------------------------------------------------------------------------------------
    @app.post("/_admin/orders", tags=["sandbox admin"], status_code=201)
    async def seed_order(request: Request) -> dict:
        body = await request.json()
        order, items = dict(body["order"]), [dict(i) for i in body.get("items") or []]
        now = iso_z()
        order.setdefault("PurchaseDate", now)
        order["LastUpdateDate"] = now
        if body.get("address"):
            order["ShippingAddress"] = body["address"]
        with store.lock:
            store.put("orders", order["AmazonOrderId"], {"order": order, "items": items, "seller": body.get("seller_id"),
                                                         "seq": store.ids.next_int("seq")})
        return {"AmazonOrderId": order["AmazonOrderId"]}

    @app.post("/_admin/orders/{order_id}/status", tags=["sandbox admin"])
    def set_status(order_id: str, status: str) -> dict:
        rec = store.get("orders", order_id)
        if rec is None:
            return _errors(404, "NotFound", "order not found")
        rec["order"]["OrderStatus"] = status
        rec["order"]["LastUpdateDate"] = iso_z()
        return {"AmazonOrderId": order_id, "OrderStatus": status}

    @app.post("/_admin/reports", tags=["sandbox admin"], status_code=201)
    async def seed_report(request: Request, gzip_compressed: bool = False) -> dict:
        data = await request.body()
        rid, did = str(store.ids.next_int("report")), f"amzn1.spdoc.1.4.na.sandbox{store.ids.next_int('doc')}"
        store.put("reports", rid, {"reportType": "GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2", "reportId": rid,
                                   "processingStatus": "DONE", "createdTime": iso_z(), "dataStartTime": iso_z(),
                                   "dataEndTime": iso_z(), "reportDocumentId": did,
                                   "marketplaceIds": ["ATVPDKIKX0DER"]})
        if gzip_compressed:
            import gzip

            data = gzip.compress(data)
        store.put("documents", did, {"data": data, "gzip": gzip_compressed})
        return {"reportId": rid, "reportDocumentId": did}

    @app.post("/_admin/settlements", tags=["sandbox admin"], status_code=201)
    def settle(commission_rate: str = "0.15", settlement_id: str | None = None,
               withhold_tax: bool = True) -> dict:
        """Settle what Amazon owes the seller, as its settlement cycle does: every shipped order and every processed
        refund adjustment not settled yet becomes lines of one GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2 report
        (Principal, Tax and Shipping as ItemPrice; an item's PromotionDiscount as Promotion/Principal; the referral
        fee as ItemFees/Commission; US marketplace facilitator tax withheld as ItemWithheldTax; refunds give back the
        commission less a 20 % refund administration fee), registered as a report the Reports API lists."""
        report = _build_settlement(Decimal(commission_rate), settlement_id, withhold_tax)
        if report is None:
            return {"settlementId": None, "detail": "nothing shipped or refunded since the last settlement"}
        sid, text, summary = report
        rid, did = str(store.ids.next_int("report")), f"amzn1.spdoc.1.4.na.sandbox{store.ids.next_int('doc')}"
        store.put("reports", rid, {"reportType": "GET_V2_SETTLEMENT_REPORT_DATA_FLAT_FILE_V2", "reportId": rid,
                                   "processingStatus": "DONE", "createdTime": iso_z(),
                                   "dataStartTime": summary["start"], "dataEndTime": summary["end"],
                                   "reportDocumentId": did, "marketplaceIds": ["ATVPDKIKX0DER"]})
        store.put("documents", did, {"data": text.encode(), "gzip": False})
        return {"settlementId": sid, "reportId": rid, "reportDocumentId": did, **summary}

    def _build_settlement(rate: Decimal, settlement_id: str | None, withhold_tax: bool
                          ) -> tuple[str, str, dict[str, Any]] | None:
        from adapters.marketplace.amazon_settlement import V2_COLUMNS  # the published column list

        cent = Decimal("0.01")
        now = utcnow()
        rows: list[dict[str, str]] = []
        orders, refunds = [], []

        def money(value: Any) -> Decimal:
            return Decimal(str((value or {}).get("Amount") or "0")) if isinstance(value, dict) \
                else Decimal(str(value or "0"))

        def line(**values: Any) -> None:
            rows.append({k.replace("_", "-"): (f"{v:.2f}" if isinstance(v, Decimal) else str(v))
                         for k, v in values.items() if v is not None})

        with store.lock:
            settled = store.collection("settled")
            for order_id, rec in store.collection("orders").items():
                order = rec["order"]
                if order.get("OrderStatus") != "Shipped" or settled.get(f"order:{order_id}"):
                    continue
                us = order.get("MarketplaceId", "ATVPDKIKX0DER") == "ATVPDKIKX0DER"
                posted = rec.get("packages", [{}])[-1].get("shipDate") or iso_z(now)
                for item in rec["items"]:
                    common = {"transaction_type": "Order", "order_id": order_id, "merchant_order_id": order_id,
                              "shipment_id": f"S{order_id[-7:]}", "marketplace_name": "Amazon.com",
                              "fulfillment_id": "MFN", "posted_date_time": posted,
                              "order_item_code": item["OrderItemId"], "sku": item.get("SellerSKU")}
                    principal, tax = money(item.get("ItemPrice")), money(item.get("ItemTax"))
                    shipping = money(item.get("ShippingPrice"))
                    line(**common, amount_type="ItemPrice", amount_description="Principal", amount=principal,
                         quantity_purchased=item["QuantityOrdered"])
                    promotion = money(item.get("PromotionDiscount"))
                    if promotion:  # the item's promotion, taken off the principal (amount-type Promotion)
                        line(**common, amount_type="Promotion", amount_description="Principal", amount=-promotion)
                    if tax:
                        line(**common, amount_type="ItemPrice", amount_description="Tax", amount=tax)
                        if withhold_tax and us:
                            line(**common, amount_type="ItemWithheldTax",
                                 amount_description="MarketplaceFacilitatorTax-Principal", amount=-tax)
                    if shipping:
                        line(**common, amount_type="ItemPrice", amount_description="Shipping", amount=shipping)
                    line(**common, amount_type="ItemFees", amount_description="Commission",
                         amount=-(principal * rate).quantize(cent, ROUND_HALF_UP))
                settled[f"order:{order_id}"] = True
                orders.append(order_id)
            for key, adj in store.collection("adjustments").items():
                if settled.get(f"adjustment:{key}"):
                    continue
                order_id = adj["AmazonOrderID"]
                rec = store.get("orders", order_id) or {"items": []}
                item = next((i for i in rec["items"] if i["OrderItemId"] == adj["AmazonOrderItemCode"]), {})
                us = (rec.get("order") or {}).get("MarketplaceId", "ATVPDKIKX0DER") == "ATVPDKIKX0DER"
                common = {"transaction_type": "Refund", "order_id": order_id, "merchant_order_id": order_id,
                          "adjustment_id": f"amzn1.adj.{key[:12]}", "marketplace_name": "Amazon.com",
                          "fulfillment_id": "MFN", "posted_date_time": iso_z(now),
                          "order_item_code": adj["AmazonOrderItemCode"], "merchant_adjustment_item_id": key,
                          "sku": item.get("SellerSKU")}
                comps = {t: Decimal(str(a)) for t, a in adj["components"].items()}
                principal = comps.get("Principal", Decimal(0))
                for kind in ("Principal", "Tax", "Shipping"):
                    if comps.get(kind):
                        line(**common, amount_type="ItemPrice", amount_description=kind, amount=-comps[kind])
                if comps.get("Tax") and withhold_tax and us:
                    line(**common, amount_type="ItemWithheldTax",
                         amount_description="MarketplaceFacilitatorTax-Principal", amount=comps["Tax"])
                if comps.get("RestockingFee"):
                    line(**common, amount_type="ItemPrice", amount_description="RestockingFee",
                         amount=-comps["RestockingFee"])
                commission = (principal * rate).quantize(cent, ROUND_HALF_UP)
                if commission:
                    line(**common, amount_type="ItemFees", amount_description="Commission", amount=commission)
                    line(**common, amount_type="ItemFees", amount_description="RefundCommission",
                         amount=-(commission * Decimal("0.2")).quantize(cent, ROUND_HALF_UP))
                settled[f"adjustment:{key}"] = True
                refunds.append(order_id)
            if not rows:
                return None
            sid = settlement_id or str(store.ids.next_int("settlement") + 11_783_000_000)
            start = store.collection("cycle").get("end") or iso_z(now - timedelta(days=14))
            end = iso_z(now + timedelta(seconds=1))
            store.collection("cycle")["end"] = end
        total = sum((Decimal(r["amount"]) for r in rows), Decimal(0))

        def utc_text(value: str) -> str:
            return _parse(value).strftime("%Y-%m-%d %H:%M:%S UTC")

        header = {"settlement-id": sid, "settlement-start-date": utc_text(start), "settlement-end-date": utc_text(end),
                  "deposit-date": utc_text(iso_z(now + timedelta(days=2))), "total-amount": f"{total:.2f}",
                  "currency": "USD"}
        out = ["\t".join(V2_COLUMNS), "\t".join(header.get(c, "") for c in V2_COLUMNS)]
        for r in rows:
            r = {**r, "settlement-id": sid}
            if "posted-date-time" in r:
                r["posted-date-time"] = utc_text(r["posted-date-time"])
                r["posted-date"] = r["posted-date-time"][:10]
            out.append("\t".join(r.get(c, "") for c in V2_COLUMNS))
        return sid, "\n".join(out) + "\n", {"start": start, "end": end, "total": f"{total:.2f}",
                                              "orders": orders, "refunded_orders": sorted(set(refunds)),
                                              "lines": len(rows)}

    @app.get("/_admin/feeds", tags=["sandbox admin"])
    def all_feeds() -> dict:
        return {"feeds": [{k: v for k, v in f.items() if k != "content"} | {"content": f["content"]}
                          for f in store.collection("feeds").values()],
                "inventory": store.collection("inventory"), "adjustments": list(store.collection("adjustments").values())}

    # -- orders ------------------------------------------------------------------------------------------------
    @app.get("/orders/v0/orders")
    def get_orders(request: Request, MarketplaceIds: str | None = None, LastUpdatedAfter: str | None = None,  # noqa: N803
                   CreatedAfter: str | None = None, NextToken: str | None = None):  # noqa: N803
        if (err := denied(request)) is not None:
            return err
        if not MarketplaceIds:
            return _errors(400, "InvalidInput", "Invalid Input", "MarketplaceIds is required")
        if NextToken:
            try:
                state = json.loads(base64.urlsafe_b64decode(NextToken.encode()))
                after, before, start = _parse(state["after"]), _parse(state["before"]), int(state["start"])
            except (ValueError, KeyError):
                return _errors(400, "InvalidInput", "Invalid Input", "NextToken is invalid")
            field = state.get("field", "LastUpdateDate")
        else:
            if not (LastUpdatedAfter or CreatedAfter):
                return _errors(400, "InvalidInput", "Invalid Input",
                               "Either CreatedAfter or LastUpdatedAfter must be specified")
            try:
                after = _parse(LastUpdatedAfter or CreatedAfter)
            except ValueError:
                return _errors(400, "InvalidInput", "Invalid Input", "the date is not ISO 8601")
            before, start = utcnow(), 0
            field = "LastUpdateDate" if LastUpdatedAfter else "PurchaseDate"
        wanted, seller = set(MarketplaceIds.split(",")), seller_of(request)
        rows = sorted((r for r in store.collection("orders").values()
                       if r["order"].get("MarketplaceId", "ATVPDKIKX0DER") in wanted and r.get("seller") == seller
                       and after <= _parse(r["order"][field]) <= before),
                      key=lambda r: (r["order"][field], r["seq"]))
        page = rows[start:start + page_size]
        payload: dict[str, Any] = {"Orders": [r["order"] for r in page]}
        if field == "LastUpdateDate":
            payload["LastUpdatedBefore"] = iso_z(before)
        else:
            payload["CreatedBefore"] = iso_z(before)
        if start + page_size < len(rows):
            payload["NextToken"] = base64.urlsafe_b64encode(json.dumps(
                {"after": after.isoformat(), "before": before.isoformat(), "start": start + page_size,
                 "field": field}).encode()).decode()
        return {"payload": payload}

    def _order(order_id: str, request: Request):
        rec = store.get("orders", order_id)
        if rec is None or rec.get("seller") != seller_of(request):  # another seller's order: not found
            return None, _errors(404, "NotFound", "Order not found", f"No order {order_id}")
        return rec, None

    @app.get("/orders/v0/orders/{order_id}")
    def get_order(order_id: str, request: Request):
        if (err := denied(request)) is not None:
            return err
        rec, err = _order(order_id, request)
        return err or {"payload": rec["order"]}

    @app.get("/orders/v0/orders/{order_id}/address")
    def get_address(order_id: str, request: Request):
        if (err := denied(request)) is not None:
            return err
        rec, err = _order(order_id, request)
        if err:
            return err
        payload = {"AmazonOrderId": order_id}
        if rec["order"].get("ShippingAddress"):
            payload["ShippingAddress"] = rec["order"]["ShippingAddress"]
        return {"payload": payload}

    @app.get("/orders/v0/orders/{order_id}/orderItems")
    def get_items(order_id: str, request: Request, NextToken: str | None = None):  # noqa: N803
        if (err := denied(request)) is not None:
            return err
        rec, err = _order(order_id, request)
        if err:
            return err
        start = int(NextToken) if NextToken and NextToken.isdigit() else 0
        payload: dict[str, Any] = {"AmazonOrderId": order_id,
                                   "OrderItems": rec["items"][start:start + items_page_size]}
        if start + items_page_size < len(rec["items"]):
            payload["NextToken"] = str(start + items_page_size)
        return {"payload": payload}

    @app.post("/orders/v0/orders/{order_id}/shipmentConfirmation", status_code=204)
    async def confirm_shipment(order_id: str, request: Request):
        if (err := denied(request)) is not None:
            return err
        rec, err = _order(order_id, request)
        if err:
            return err
        body = await request.json()
        pkg = body.get("packageDetail") if isinstance(body, dict) else None
        if not isinstance(pkg, dict) or not body.get("marketplaceId"):
            return _errors(400, "InvalidInput", "Invalid Input", "marketplaceId and packageDetail are required")
        missing = [k for k in ("packageReferenceId", "carrierCode", "shipDate", "orderItems") if not pkg.get(k)]
        if missing or not str(pkg["packageReferenceId"]).isdigit():
            return _errors(400, "InvalidInput", "Invalid Input", f"packageDetail: missing or invalid {missing}")
        if rec["order"].get("OrderStatus") in ("Canceled", "Pending"):
            return _errors(400, "InvalidInput", "Invalid Input", f"order is {rec['order']['OrderStatus']}")
        with store.lock:
            items = {i["OrderItemId"]: i for i in rec["items"]}
            for oi in pkg["orderItems"]:
                item = items.get(oi.get("orderItemId"))
                qty = oi.get("quantity")
                left = (item or {}).get("QuantityOrdered", 0) - (item or {}).get("QuantityShipped", 0)
                if item is None or not isinstance(qty, int) or qty <= 0 or qty > left:
                    return _errors(400, "InvalidInput", "Invalid Input", f"orderItem {oi.get('orderItemId')}")
            for oi in pkg["orderItems"]:
                items[oi["orderItemId"]]["QuantityShipped"] = items[oi["orderItemId"]].get("QuantityShipped", 0) \
                    + oi["quantity"]
            done = all(i.get("QuantityShipped", 0) >= i["QuantityOrdered"] for i in rec["items"])
            rec["order"]["OrderStatus"] = "Shipped" if done else "PartiallyShipped"
            rec["order"]["LastUpdateDate"] = iso_z()
            rec.setdefault("packages", []).append(pkg)
        return Response(status_code=204)

    # -- orders 2026-01-01 (the same orders, in the v2026-01-01 shape) -----------------------------------------
    def _csv(request: Request, name: str) -> list[str]:
        # Swagger 2 arrays without collectionFormat are csv; repeated keys are accepted as well
        return [v for raw in request.query_params.getlist(name) for v in raw.split(",") if v]

    def _included(request: Request) -> set[str] | JSONResponse:
        included = set(_csv(request, "includedData"))
        if unknown := included - V2026_DATASETS:
            return _errors(400, "InvalidInput", "Invalid Input", f"includedData: unknown {sorted(unknown)}")
        return included

    @app.get("/orders/2026-01-01/orders")
    def search_orders(request: Request, createdAfter: str | None = None,  # noqa: N803
                      lastUpdatedAfter: str | None = None, maxResultsPerPage: int | None = None,  # noqa: N803
                      paginationToken: str | None = None):  # noqa: N803
        if (err := denied(request)) is not None:
            return err
        included = _included(request)
        if isinstance(included, JSONResponse):
            return included
        if bool(createdAfter) == bool(lastUpdatedAfter):
            return _errors(400, "InvalidInput", "Invalid Input",
                           "Exactly one of createdAfter and lastUpdatedAfter must be provided")
        if maxResultsPerPage is not None and not 1 <= maxResultsPerPage <= 100:
            return _errors(400, "InvalidInput", "Invalid Input", "maxResultsPerPage must be between 1 and 100")
        size = min(maxResultsPerPage or 100, page_size)
        field = "LastUpdateDate" if lastUpdatedAfter else "PurchaseDate"
        try:
            after = _parse(lastUpdatedAfter or createdAfter)
        except ValueError:
            return _errors(400, "InvalidInput", "Invalid Input", "the date is not ISO 8601")
        assert after is not None
        before, start = utcnow(), 0
        if paginationToken:
            try:
                state = json.loads(base64.urlsafe_b64decode(paginationToken.encode()))
                before, start = _parse(state["before"]), int(state["start"])
                same = state["after"] == after.isoformat() and state["field"] == field
            except (ValueError, KeyError, TypeError):
                same = False
            if not same:
                return _errors(400, "InvalidInput", "Invalid Input", "paginationToken is invalid for this search")
        assert before is not None
        wanted, seller = set(_csv(request, "marketplaceIds")), seller_of(request)
        rows = sorted((r for r in store.collection("orders").values()
                       if (not wanted or r["order"].get("MarketplaceId", "ATVPDKIKX0DER") in wanted)
                       and r.get("seller") == seller and after <= _parse(r["order"][field]) <= before),
                      key=lambda r: (r["order"][field], r["seq"]))
        page = rows[start:start + size]
        body: dict[str, Any] = {"orders": [v2026_order(r, included) for r in page]}
        if start + size < len(rows):
            body["pagination"] = {"nextToken": base64.urlsafe_b64encode(json.dumps(
                {"after": after.isoformat(), "before": before.isoformat(), "start": start + size,
                 "field": field}).encode()).decode()}
        body["lastUpdatedBefore" if field == "LastUpdateDate" else "createdBefore"] = iso_z(before)
        return body

    @app.get("/orders/2026-01-01/orders/{order_id}")
    def get_order_v2026(order_id: str, request: Request):
        if (err := denied(request)) is not None:
            return err
        included = _included(request)
        if isinstance(included, JSONResponse):
            return included
        rec, err = _order(order_id, request)
        return err or {"order": v2026_order(rec, included)}

    # -- feeds -------------------------------------------------------------------------------------------------
    @app.post("/feeds/2021-06-30/documents", status_code=201)
    async def create_feed_document(request: Request):
        if (err := denied(request)) is not None:
            return err
        body = await request.json()
        if not body.get("contentType"):
            return _errors(400, "InvalidInput", "Invalid Input", "contentType is required")
        doc_id = f"amzn1.tortuga.4.na.sandbox{store.ids.next_int('feeddoc')}"
        store.put("feed_documents", doc_id, {"contentType": body["contentType"], "content": None})
        return JSONResponse({"feedDocumentId": doc_id, "url": str(request.base_url) + f"_uploads/{doc_id}"}, 201)

    @app.put("/_uploads/{doc_id}")
    async def upload(doc_id: str, request: Request):
        doc = store.get("feed_documents", doc_id)
        if doc is None:
            return Response("<Error><Code>NoSuchUpload</Code></Error>", 404, media_type="application/xml")
        doc["content"] = await request.body()
        return Response(status_code=200)

    @app.post("/feeds/2021-06-30/feeds", status_code=202)
    async def create_feed(request: Request):
        if (err := denied(request)) is not None:
            return err
        body = await request.json()
        doc = store.get("feed_documents", str(body.get("inputFeedDocumentId")))
        if doc is None or doc["content"] is None or not body.get("feedType") or not body.get("marketplaceIds"):
            return _errors(400, "InvalidInput", "Invalid Input", "feedType, marketplaceIds and an uploaded "
                           "inputFeedDocumentId are required")
        feed_id = str(store.ids.next_int("feed"))
        status, problem = "DONE", None
        try:
            _process(body["feedType"], doc["content"])
        except (ValueError, KeyError, ET.ParseError) as exc:
            status, problem = "FATAL", str(exc)
        store.put("feeds", feed_id, {"feedId": feed_id, "feedType": body["feedType"], "processingStatus": status,
                                     "marketplaceIds": body["marketplaceIds"], "createdTime": iso_z(),
                                     "problem": problem, "content": doc["content"].decode("utf-8", "replace")})
        return JSONResponse({"feedId": feed_id}, 202)

    @app.get("/feeds/2021-06-30/feeds/{feed_id}")
    def get_feed(feed_id: str, request: Request):
        if (err := denied(request)) is not None:
            return err
        feed = store.get("feeds", feed_id)
        if feed is None:
            return _errors(404, "NotFound", "Feed not found")
        return {k: v for k, v in feed.items() if k not in ("content", "problem")}

    def _process(feed_type: str, content: bytes) -> None:
        if feed_type == "JSON_LISTINGS_FEED":
            doc = json.loads(content)
            for m in doc["messages"]:
                for p in m["patches"]:
                    if p["path"] == "/attributes/fulfillment_availability":
                        store.collection("inventory")[m["sku"]] = int(p["value"][0]["quantity"])
        elif feed_type == "POST_ORDER_ACKNOWLEDGEMENT_DATA":
            root = ET.fromstring(content)
            for ack in root.iter("OrderAcknowledgement"):
                rec = store.get("orders", ack.findtext("AmazonOrderID") or "")
                if rec is not None and ack.findtext("StatusCode") == "Failure":
                    rec["order"]["OrderStatus"] = "Canceled"
                    rec["order"]["LastUpdateDate"] = iso_z()
        elif feed_type == "POST_PAYMENT_ADJUSTMENT_DATA":
            root = ET.fromstring(content)
            for adj in root.iter("OrderAdjustment"):
                for item in adj.iter("AdjustedItem"):
                    key = item.findtext("MerchantAdjustmentItemID") or ""
                    if store.get("adjustments", key) is None:  # Amazon ignores a repeated adjustment item id
                        store.put("adjustments", key, {
                            "AmazonOrderID": adj.findtext("AmazonOrderID"),
                            "AmazonOrderItemCode": item.findtext("AmazonOrderItemCode"),
                            "components": {c.findtext("Type"): c.findtext("Amount")
                                           for c in item.iter("Component")}})
        else:
            raise ValueError(f"feed type {feed_type} is not simulated")

    # -- reports -----------------------------------------------------------------------------------------------
    @app.get("/reports/2021-06-30/reports")
    def get_reports(request: Request, reportTypes: str | None = None, nextToken: str | None = None,  # noqa: N803
                    pageSize: int = 10, processingStatuses: str | None = None):  # noqa: N803
        if (err := denied(request)) is not None:
            return err
        if not reportTypes and not nextToken:
            return _errors(400, "InvalidInput", "Invalid Input", "reportTypes or nextToken is required")
        start = int(nextToken) if nextToken and nextToken.isdigit() else 0
        rows = list(store.collection("reports").values())
        page = rows[start:start + max(1, min(pageSize, 100))]
        body: dict[str, Any] = {"reports": page}
        if start + len(page) < len(rows):
            body["nextToken"] = str(start + len(page))
        return body

    @app.get("/reports/2021-06-30/documents/{doc_id}")
    def get_report_document(doc_id: str, request: Request):
        if (err := denied(request)) is not None:
            return err
        doc = store.get("documents", doc_id)
        if doc is None:
            return _errors(404, "NotFound", "Report document not found")
        body = {"reportDocumentId": doc_id, "url": str(request.base_url) + f"_downloads/{doc_id}"}
        if doc["gzip"]:
            body["compressionAlgorithm"] = "GZIP"
        return body

    @app.get("/_downloads/{doc_id}")
    def download(doc_id: str):
        doc = store.get("documents", doc_id)
        if doc is None:
            return Response("<Error><Code>NoSuchKey</Code></Error>", 404, media_type="application/xml")
        return Response(doc["data"], media_type="text/tab-separated-values")

    # -- Listings Items 2021-08-01: prices (docs/pricing.md) ------------------------------------------------------
    # A listing per seller and SKU with its product type and, per marketplace, its offer price (`our_price` of
    # `purchasable_offer`) and `list_price`; a patch is applied at once (Amazon applies shortly after).
    @app.post("/_admin/listings", tags=["sandbox admin"], status_code=201)
    async def seed_listing(request: Request) -> dict:
        body = await request.json()
        key = f"{body.get('seller_id') or 'A-RETAILFLOW-SANDBOX'}|{body['sku']}"
        listing = {"sku": body["sku"], "product_type": body.get("product_type", "HOME"),
                   "asin": body.get("asin", f"B0{abs(hash(body['sku'])) % 10**8:08d}"), "offers": {}, "list_price": {}}
        if body.get("price") is not None:
            listing["offers"][body.get("marketplace_id", "ATVPDKIKX0DER")] = {
                "amount": str(body["price"]), "currency": body.get("currency", "USD")}
        store.put("listings", key, listing)
        return {"sku": body["sku"]}

    @app.get("/_admin/listings", tags=["sandbox admin"])
    def listed_prices() -> dict:
        return {"listings": [{"seller_sku": k, **v} for k, v in store.collection("listings").items()]}

    def _listing_view(listing: dict[str, Any], marketplace: str, included: set[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"sku": listing["sku"]}
        if "summaries" in included:
            out["summaries"] = [{"marketplaceId": marketplace, "asin": listing["asin"],
                                 "productType": listing["product_type"], "conditionType": "new_new",
                                 "status": ["BUYABLE"] if marketplace in listing["offers"] else ["DISCOVERABLE"],
                                 "itemName": listing["sku"]}]
        offer = listing["offers"].get(marketplace)
        if "attributes" in included:
            attrs: dict[str, Any] = {}
            if offer:
                attrs["purchasable_offer"] = [{"marketplace_id": marketplace, "currency": offer["currency"],
                                               "audience": "ALL", "our_price": [{"schedule": [
                                                   {"value_with_tax": float(offer["amount"])}]}]}]
            listed = listing["list_price"].get(marketplace)
            if listed:
                attrs["list_price"] = [{"marketplace_id": marketplace, "currency": listed["currency"],
                                        "value": float(listed["amount"])}]
            out["attributes"] = attrs
        if "offers" in included:
            out["offers"] = [{"marketplaceId": marketplace, "offerType": "B2C",
                              "price": {"currencyCode": offer["currency"], "amount": offer["amount"]}}] if offer else []
        return out

    @app.get("/listings/2021-08-01/items/{seller_id}/{sku}")
    def get_listing(seller_id: str, sku: str, request: Request, marketplaceIds: str = "",  # noqa: N803
                    includedData: str = "summaries"):  # noqa: N803
        if (err := denied(request)) is not None:
            return err
        listing = store.get("listings", f"{seller_id}|{sku}")
        if listing is None:
            return _errors(404, "NOT_FOUND", f"SKU '{sku}' not found in marketplace {marketplaceIds}")
        return _listing_view(listing, marketplaceIds.split(",")[0], set(includedData.split(",")))

    @app.patch("/listings/2021-08-01/items/{seller_id}/{sku}")
    async def patch_listing(seller_id: str, sku: str, request: Request, marketplaceIds: str = ""):  # noqa: N803
        if (err := denied(request)) is not None:
            return err
        listing = store.get("listings", f"{seller_id}|{sku}")
        if listing is None:
            return _errors(404, "NOT_FOUND", f"SKU '{sku}' not found in marketplace {marketplaceIds}")
        body = await request.json()
        submission = secrets.token_hex(16)

        def invalid(code: str, message: str, attribute: str) -> dict:
            return {"sku": sku, "status": "INVALID", "submissionId": submission, "issues": [
                {"code": code, "message": message, "severity": "ERROR", "attributeNames": [attribute]}]}

        if body.get("productType") != listing["product_type"]:
            return invalid("4000001", f"productType {body.get('productType')!r} does not match the listing's "
                           f"{listing['product_type']!r}", "product_type")
        changes: list[tuple[str, str, dict[str, str]]] = []
        for patch in body.get("patches") or []:
            name = str(patch.get("path", "")).removeprefix("/attributes/")
            for value in patch.get("value") or []:
                market = value.get("marketplace_id") or marketplaceIds
                if name == "purchasable_offer":
                    schedule = ((value.get("our_price") or [{}])[0].get("schedule") or [{}])[0]
                    amount = schedule.get("value_with_tax")
                elif name == "list_price":
                    amount = value.get("value")
                else:
                    return invalid("90220", f"attribute {name!r} is not simulated", name)
                if amount is None or Decimal(str(amount)) < 0:
                    return invalid("8567", f"{name}: the price must be a positive number", name)
                changes.append((name, market, {"amount": f"{Decimal(str(amount)):.2f}",
                                               "currency": value.get("currency") or "USD"}))
        with store.lock:
            for name, market, price in changes:
                (listing["offers"] if name == "purchasable_offer" else listing["list_price"])[market] = price
        return {"sku": sku, "status": "ACCEPTED", "submissionId": submission, "issues": []}

    return app
