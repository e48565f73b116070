"""An order on the Shopify GraphQL Admin API end to end (issue 18): the dev server, the real worker and API, the
Shopify sandbox's GraphQL endpoint on loopback. A shipment is confirmed with `fulfillmentCreate` (tracking on the
shop's fulfillment, read back over GraphQL); a fulfillment order the merchant already closed makes Shopify answer
with a user error, which parks the run with Shopify's own message (not a retry loop, not a failure)."""

from __future__ import annotations

import json

import httpx
import pytest

from sandbox.common import ServedApp
from sandbox.shopify import create_app as create_shopify
from tests.integration.conftest import SECRET, free_port

pytestmark = pytest.mark.integration

TOKEN = "shpat_it_graphql"
PORT = free_port()
SHOP = {"marketplace_adapters": {"shopify": "shopify"}, "shopify_admin_base_url": f"http://127.0.0.1:{PORT}",
        "shopify_admin_access_token": TOKEN, "shopify_admin_api": "graphql"}


@pytest.fixture(scope="module")
def shop():
    app = create_shopify(access_token=TOKEN, webhook_url="", webhook_secret=SECRET)
    with ServedApp(app, port=PORT) as served:
        yield served


def graphql(shop, query: str, variables: dict | None = None) -> dict:
    resp = httpx.post(f"{shop.base_url}/admin/api/2026-10/graphql.json", headers={"X-Shopify-Access-Token": TOKEN},
                      json={"query": query, "variables": variables or {}}, timeout=20)
    resp.raise_for_status()
    body = resp.json()
    assert not body.get("errors"), body
    return body["data"]


FULFILLMENTS = """query($id: ID!) { order(id: $id) { displayFulfillmentStatus
  fulfillments(first: 10) { status trackingInfo(first: 5) { company number } } } }"""


def seed(shop, stack) -> tuple[bytes, str]:
    body, oid = stack.order_body()
    assert httpx.post(f"{shop.base_url}/_admin/orders", content=body, timeout=20).status_code == 201
    return body, oid


@pytest.mark.parametrize("stack_with", [SHOP], indirect=True)
async def test_a_shipment_is_a_fulfillment_with_tracking_and_a_closed_fulfillment_order_parks_with_shopifys_words(
        shop, stack_with):
    stack = stack_with
    body, oid = seed(shop, stack)
    assert (await stack.send_shopify(body)).status_code == 202
    view = await stack.wait_status("shopify", oid, {"completed"}, timeout=60)
    order = graphql(shop, FULFILLMENTS, {"id": f"gid://shopify/Order/{oid}"})["order"]
    assert order["displayFulfillmentStatus"] == "FULFILLED"
    (ful,) = order["fulfillments"]
    assert ful["trackingInfo"] and ful["trackingInfo"][0]["number"]
    assert view["status"] == "completed"

    # the merchant fulfils a second order by hand in Shopify first: its fulfillment orders are closed
    body2, oid2 = seed(shop, stack)
    fos = httpx.get(f"{shop.base_url}/admin/api/2026-10/orders/{oid2}/fulfillment_orders.json",
                    headers={"X-Shopify-Access-Token": TOKEN}, timeout=20).json()["fulfillment_orders"]
    manual = httpx.post(f"{shop.base_url}/admin/api/2026-10/fulfillments.json", headers={
        "X-Shopify-Access-Token": TOKEN}, json={"fulfillment": {
            "line_items_by_fulfillment_order": [{"fulfillment_order_id": fo["id"]} for fo in fos],
            "tracking_info": {"number": "MANUAL-1", "company": "UPS"}}}, timeout=20)
    assert manual.status_code == 201, manual.text
    assert (await stack.send_shopify(body2)).status_code == 202
    parked = await stack.wait_status("shopify", oid2, {"needs_attention"}, timeout=60)
    reason = parked["reason"]
    assert "ChannelRejected" in json.dumps(parked) or "Shopify" in reason
    assert "fulfillment order" in reason.lower(), reason  # Shopify's own user error, word for word
    order2 = graphql(shop, FULFILLMENTS, {"id": f"gid://shopify/Order/{oid2}"})["order"]
    assert [f["trackingInfo"][0]["number"] for f in order2["fulfillments"]] == ["MANUAL-1"]  # nothing sent twice
