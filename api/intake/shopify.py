"""Shopify webhooks (`POST /webhooks/shopify`): `orders/create` starts the order, `orders/cancelled` signals its
cancel (or, after shipment, starts a return of what shipped), `refunds/create` starts a refund without a return.
Deduplicated by `X-Shopify-Webhook-Id`; other topics are remembered and ignored."""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime
from typing import Any

import structlog

from adapters.http import VendorUnavailable
from adapters.marketplace import shopify
from adapters.marketplace.shopify_admin import REFUND_NOTE_PREFIX
from api.intake import returns
from api.intake.pipeline import Accepted, Act, Delivery, Fault, Ignored, Key, Outcome, Source
from canonical.errors import ChannelRejected
from canonical.fulfillment import AnalystAction
from canonical.order import order_workflow_id
from canonical.order_feed import UnmappableOrder
from canonical.vendor_errors import VendorAuthFailed
from runtime.fulfillment_network import FulfillmentNetworkError, pickup_locations
from runtime.observability import SHOPIFY_WEBHOOK_VERSION_MISMATCH
from starters import deliver_held, signal_workflow
from starters.orders import start_order
from starters.returns import start_return

log = structlog.get_logger(__name__)


def _started(wf_id: str, duplicate: bool, **extra: Any) -> Accepted:
    return Accepted(wf_id, Outcome(200 if duplicate else 202, {"workflow_id": wf_id, "duplicate": duplicate, **extra}))


class ShopifySource(Source):
    name = "shopify"

    def verify(self, d: Delivery) -> None:
        """The signature, against the secrets of the store the delivery names (`X-Shopify-Shop-Domain`) only.

        With no stores configured (RETAILFLOW_STORES empty) the single-shop secrets verify every delivery, as
        before. Once stores are configured a delivery is never attributed to a shop it does not name: a known
        domain signed with another shop's secret is 401; an unknown or missing domain is 422 and quarantined
        (for a replay once the shop is configured) when it carries the signature of a configured shop's secret
        (a new shop of the same Shopify app), and 401 otherwise (unauthenticated: only a bounded copy is kept)."""
        topic, delivery_id = shopify.header(d.headers, "topic"), shopify.header(d.headers, "webhook-id")
        signature = shopify.header(d.headers, "hmac-sha256")
        stores = d.settings.store_directory()
        if not stores.configured:
            store = stores.by_channel(d.settings.shopify_channel)
            secrets = [s.get_secret_value() for s in d.settings.shopify_webhook_secrets]
        else:
            domain = shopify.header(d.headers, "shop-domain")
            store = stores.by_shop_domain(domain)
            if store is None or store.vendor != "shopify":
                every = [s.get_secret_value() for shop in stores.shopify_stores()
                         for s in d.settings.shopify_store_secrets(shop.channel)]
                if shopify.verify_webhook(d.body, signature, every):
                    shown = "no X-Shopify-Shop-Domain" if not domain else f"shop domain {domain[:255]!r}"
                    raise Fault(422, f"{shown} is not a configured store (RETAILFLOW_STORES); the delivery is "
                                     "kept, not attributed to another shop", topic=topic, delivery_id=delivery_id)
                raise Fault(401, "missing or invalid X-Shopify-Hmac-Sha256 signature (and the shop domain is not "
                                 "a configured store)", topic=topic, delivery_id=delivery_id)
            secrets = [s.get_secret_value() for s in d.settings.shopify_store_secrets(store.channel)]
        if not shopify.verify_webhook(d.body, signature, secrets):
            raise Fault(401, "missing or invalid X-Shopify-Hmac-Sha256 signature", topic=topic,
                        delivery_id=delivery_id)
        d.channel_store = store

    @staticmethod
    def _channel(d: Delivery) -> str:
        """The channel of the store the delivery was verified for (the single-shop channel by default)."""
        return d.channel_store.channel if d.channel_store is not None else d.settings.shopify_channel

    def identify(self, d: Delivery) -> Key:
        key = Key(shopify.header(d.headers, "topic"), shopify.header(d.headers, "webhook-id"))
        self._fresh(d, key)
        self._api_version(d, key)
        return key

    @staticmethod
    def _api_version(d: Delivery, key: Key) -> None:
        """`X-Shopify-API-Version` against the configured Admin API version: the app's webhooks should come in
        the version the platform speaks. Another one is still processed (the payload's documented JSON maps the
        same across supported versions) but logged and counted, so the app's webhook version can be fixed."""
        received = shopify.header(d.headers, "api-version")
        configured = d.settings.shopify_admin_api_version
        if received and received.strip() != configured:
            SHOPIFY_WEBHOOK_VERSION_MISMATCH.labels(received=received.strip()[:16], configured=configured).inc()
            log.warning("shopify.webhook_api_version", received=received.strip()[:16], configured=configured,
                        topic=key.topic, delivery_id=key.delivery_id)

    @staticmethod
    def _fresh(d: Delivery, key: Key) -> None:
        """The replay window: a signed delivery triggered longer ago than Shopify keeps retrying is a replay
        (a captured request sent again under a new webhook id), so it is quarantined, not processed. An
        analyst's replay of a quarantined copy is deliberate and not held to it."""
        limit = d.settings.shopify_webhook_max_age_seconds
        raw = shopify.header(d.headers, "triggered-at")
        if d.replay or not limit or not raw:
            return
        try:
            when = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
            when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        except (ValueError, OverflowError):  # not a timestamp, or one with no UTC time (0001-01-01T00:00+01:00)
            raise Fault(400, f"X-Shopify-Triggered-At {raw[:64]!r} is not an ISO 8601 timestamp in range",
                        topic=key.topic, delivery_id=key.delivery_id) from None
        age = (datetime.now(UTC) - when).total_seconds()
        if age > limit:
            raise Fault(409, f"delivery triggered at {when.isoformat()}, {age / 3600:.1f} h ago: beyond the "
                             f"{limit} s replay window (RETAILFLOW_SHOPIFY_WEBHOOK_MAX_AGE_SECONDS)",
                        topic=key.topic, delivery_id=key.delivery_id)

    async def map(self, d: Delivery, key: Key) -> Act | Ignored:
        try:
            payload = shopify.loads(d.body)
            if key.topic == "orders/create":
                return await self._order(d, payload)
            if key.topic == "refunds/create":  # returns (issue 3): a refund without a return → credit note + tax
                return await self._refund(d, payload)
            if key.topic == "orders/cancelled":
                return await self._cancel(d, payload)
        except shopify.ShopifyMappingError as exc:
            raise Fault(422, f"payload does not map ({key.topic}): {exc}") from exc
        except (VendorUnavailable, VendorAuthFailed) as exc:  # the ERP (or, for a delivery method, Shopify) failed
            log.warning("intake.erp_unavailable", topic=key.topic, error=str(exc)[:300])
            what = "Shopify could not be asked for the order's delivery method" if key.topic == "orders/create" \
                else f"the ERP could not be reached to check the {key.topic} against the order"
            raise Fault(503, f"{what}: {exc}") from exc
        return Ignored({"ignored": True, "detail": f"topic {key.topic!r} is not handled", "duplicate": False})

    @staticmethod
    async def _order(d: Delivery, payload: dict) -> Act:
        channel = ShopifySource._channel(d)
        try:
            locations = pickup_locations(d.settings, channel)
        except FulfillmentNetworkError as exc:  # a configuration fault: Shopify retries while it is fixed
            raise Fault(503, f"the fulfillment network file is invalid, click-and-collect cannot be recognised: "
                             f"{exc}") from exc
        if locations and "fulfillment_orders" not in payload:
            # click-and-collect (docs/fulfillment.md): the webhook carries no delivery method, its fulfillment
            # orders do — asked for when a store of the channel offers pick-up, for every order (Shopify: one
            # order may mix methods; a pick-up order's address and shipping line are no reliable sign)
            payload = {**payload, "fulfillment_orders": await asyncio.to_thread(
                ShopifySource._delivery_methods, d, channel, shopify.order_id(payload))}
        order = shopify.map_order(payload, channel=channel, pickup_locations=locations)
        if order.pickup_store is not None:
            log.info("intake.click_and_collect", channel=channel, external_id=order.external_order_id,
                     store=order.pickup_store)
        store = d.channel_store
        if store is not None and d.settings.store_directory().configured and order.currency != store.currency:
            # Shopify's order `currency` is the shop's currency: another one means the delivery is not this shop's
            raise Fault(422, f"order {order.external_order_id} is in {order.currency}, but store {store.channel} "
                             f"sells in {store.currency} (RETAILFLOW_STORES)")

        async def act() -> Accepted:
            # a cancel that overtook this order was held (see _cancel): the run starts with it, so it never ships
            held = await asyncio.to_thread(d.store.held_cancel, order.workflow_id)
            cancel = AnalystAction(actor=held["actor"], reason=held["reason"]) if held else None
            wf_id, duplicate = await start_order(await d.client(), d.settings, order, cancel=cancel)
            if not held:  # a cancel held while this run was starting (the two crossed) is delivered now
                held = await asyncio.to_thread(d.store.held_cancel, order.workflow_id)
                if held and not await signal_workflow(await d.client(), wf_id, "cancel",
                                                      AnalystAction(actor=held["actor"], reason=held["reason"])):
                    held = None
            if held:
                await asyncio.to_thread(d.store.cancel_applied, wf_id)
            early = await deliver_held(await d.client(), d.store, wf_id)  # shipments that overtook the order
            log.info("intake.order", channel=order.channel, external_id=order.external_order_id, workflow_id=wf_id,
                     duplicate=duplicate, cancelled_on_arrival=held is not None, early_events=early)
            return _started(wf_id, duplicate, **({"cancelled_on_arrival": True} if held else {}))

        return act

    @staticmethod
    def _delivery_methods(d: Delivery, channel: str, external_id: str) -> list[dict[str, Any]]:
        """The order's fulfillment orders from the shop's Admin API (GraphQL, or REST when configured)."""
        from runtime.registry import build_shopify, channel_settings

        client = build_shopify(channel_settings(d.settings, channel, "shopify"), d.engine, channel)
        try:
            return client.delivery_methods(external_id)
        except UnmappableOrder as exc:
            raise shopify.ShopifyMappingError(f"the fulfillment orders cannot be read: {exc}") from None
        except ChannelRejected as exc:  # e.g. a scope the app lacks: the delivery is retried once it is granted
            raise Fault(503, f"Shopify refused the order's fulfillment orders (delivery method): {exc}") from exc
        finally:
            client.http.close()

    @staticmethod
    async def _refund(d: Delivery, payload: dict) -> Act | Ignored:
        if str(payload.get("note") or "").startswith(REFUND_NOTE_PREFIX):
            # the echo of a refund the platform itself paid through the Admin API (a return's refund step):
            # its credit note and tax refund are that return's, so it is not booked again
            return Ignored({"ignored": True, "duplicate": False,
                            "detail": "a refund retailflow made (its return books it)"})
        lookup = functools.partial(returns.booked_order, d.settings, d.engine)
        request = await asyncio.to_thread(returns.map_shopify_refund, lookup, payload, ShopifySource._channel(d))

        async def act() -> Accepted:
            wf_id, duplicate = await start_return(await d.client(), d.settings, request, goods_returned=False,
                                                  channel_already_refunded=True)
            await deliver_held(await d.client(), d.store, wf_id)
            return _started(wf_id, duplicate)

        return act

    @staticmethod
    async def _cancel(d: Delivery, payload: dict) -> Act:
        channel = ShopifySource._channel(d)
        external_id, reason = shopify.map_cancellation(payload)
        wf_id = order_workflow_id(channel, external_id)
        booked = await asyncio.to_thread(returns.booked_order, d.settings, d.engine, wf_id)
        shipped_return = returns.cancellation_return(booked, channel, external_id, datetime.now(UTC))
        if shipped_return is not None:  # returns (issue 3): a cancellation after shipment becomes a return
            async def start() -> Accepted:
                ret_id, duplicate = await start_return(await d.client(), d.settings, shipped_return)
                await deliver_held(await d.client(), d.store, ret_id)  # a receipt that came before the return
                return _started(ret_id, duplicate, order_workflow_id=wf_id)

            return start

        async def cancel() -> Accepted:
            actor = f"channel:{channel}"
            if not await signal_workflow(await d.client(), wf_id, "cancel", AnalystAction(actor=actor, reason=str(reason))):
                # No running order yet (the cancel overtook the create) or it has closed: the cancel is held, so
                # the create that follows starts cancelled and never ships; a copy is kept for an analyst too.
                await asyncio.to_thread(d.store.hold_cancel, wf_id, source=d.source,
                                        delivery_id=shopify.header(d.headers, "webhook-id"), actor=actor,
                                        reason=str(reason))
                # the create may have started the run meanwhile, after it looked for a held cancel: signal again
                if await signal_workflow(await d.client(), wf_id, "cancel", AnalystAction(actor=actor,
                                                                                           reason=str(reason))):
                    await asyncio.to_thread(d.store.cancel_applied, wf_id)
                    return Accepted(wf_id, Outcome(202, {"workflow_id": wf_id, "duplicate": False, "signalled": True}))
                raise Fault(202, f"no running workflow {wf_id} to cancel: held for the order's arrival",
                            body={"workflow_id": wf_id, "duplicate": False, "signalled": False, "held": True})
            return Accepted(wf_id, Outcome(202, {"workflow_id": wf_id, "duplicate": False, "signalled": True}))

        return cancel


SOURCE = ShopifySource()
