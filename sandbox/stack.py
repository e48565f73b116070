"""The vendor sandboxes served next to the platform (`retailflow dev --sandbox`, `retailflow-sandbox`).

`build_app` builds one sandbox with what the platform it talks to is configured with: the credentials the adapters
send (RETAILFLOW_ERPNEXT_API_KEY…) and, for the vendors that call back, the platform's webhook URLs (Shopify's
signed webhooks to ``/webhooks/shopify`` with RETAILFLOW_SHOPIFY_WEBHOOK_SECRET, ShipStation's SHIP_NOTIFY to
``/webhooks/shipstation``). `SandboxStack` serves each on its port (RETAILFLOW_SANDBOX_HOST/_PORTS) on its own
thread and event loop, so a sandbox under load never stalls the API or the worker, and stops them all. With every
sandbox (no `names`), the EDI drop-ship supplier (sandbox/edi_supplier.py) answers from the drop folder the worker
writes to (RETAILFLOW_SUPPLIER_DROP_FOLDER, default <data_dir>/edi) on a thread of its own.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

import structlog
from fastapi import FastAPI

from runtime.settings import Settings
from runtime.suppliers import supplier_drop_folder
from sandbox import APPS, DEFAULT_PORTS
from sandbox.common import ServedApp
from sandbox.faults import FaultInjector

log = structlog.get_logger(__name__)


def app_kwargs(name: str, settings: Settings) -> dict[str, Any]:
    """The factory arguments of sandbox `name` for a platform configured by `settings`."""
    api = settings.effective_api_base_url
    if name == "avatax":
        return {"account_id": settings.avalara_account_id,
                "license_key": settings.avalara_license_key.get_secret_value()}
    if name == "erpnext":
        return {"api_key": settings.erpnext_api_key, "api_secret": settings.erpnext_api_secret.get_secret_value()}
    if name == "shopify":
        return {"access_token": settings.shopify_admin_access_token.get_secret_value(),
                "webhook_url": f"{api}/webhooks/shopify",
                "webhook_secret": settings.shopify_webhook_secret.get_secret_value()}
    if name == "amazon":
        return {"client_id": settings.amazon_lwa_client_id,
                "client_secret": settings.amazon_lwa_client_secret.get_secret_value(),
                "refresh_token": settings.amazon_refresh_token.get_secret_value()}
    if name == "shipstation":
        token = settings.shipstation_webhook_token
        return {"api_key": settings.shipstation_api_key.get_secret_value(),
                "api_secret": settings.shipstation_api_secret.get_secret_value(),
                "webhook_url": f"{api}/webhooks/shipstation" + (f"?token={token.get_secret_value()}" if token else ""),
                "ship_after_seconds": settings.sandbox_ship_after_seconds}
    if name == "shipbob":
        return {"access_token": settings.shipbob_access_token.get_secret_value(),
                "channel_id": settings.shipbob_channel_id, "webhook_url": f"{api}/webhooks/shipbob",
                "webhook_secret": settings.shipbob_webhook_secret.get_secret_value(),
                "ship_after_seconds": settings.sandbox_ship_after_seconds}
    return {}


def build_app(name: str, settings: Settings, *, seed: int | None = None) -> FastAPI:
    """Sandbox `name` (a key of sandbox.APPS) for the platform `settings` describe, with its own seeded faults."""
    if name not in APPS:
        raise KeyError(f"unknown sandbox {name!r}; known: {', '.join(sorted(APPS))}")
    module, _, factory = APPS[name].partition(":")
    injector = FaultInjector(seed=settings.sandbox_seed if seed is None else seed)
    return getattr(importlib.import_module(module), factory)(injector=injector, **app_kwargs(name, settings))


def start_edi_supplier(settings: Settings, *, seed: int | None = None,
                       interval: float = 1.0) -> tuple[threading.Thread, threading.Event]:
    """The sandbox drop-ship supplier ACME polling the platform's drop folder: it answers each 850 with 997, 855,
    856 and 810, and each EDIFACT ORDERS (ACME in RETAILFLOW_SUPPLIER_EDIFACT_PARTNERS) with ORDRSP, DESADV and
    INVOIC (faults seeded by RETAILFLOW_SANDBOX_SEED; none by default)."""
    from sandbox.edi_supplier import SupplierFaults, run_in_thread

    return run_in_thread(supplier_drop_folder(settings), interval=interval, supplier_id="ACME",
                         faults=SupplierFaults(seed=settings.sandbox_seed if seed is None else seed))


def port_of(name: str, settings: Settings) -> int:
    port = settings.sandbox_ports.get(name, DEFAULT_PORTS.get(name))
    if port is None:
        raise KeyError(f"no port for sandbox {name!r}: set RETAILFLOW_SANDBOX_PORTS")
    return port


class SandboxStack:
    """Every sandbox in `names` (default all) served on its configured port, each on a background thread."""

    def __init__(self, settings: Settings, names: list[str] | None = None, *, seed: int | None = None) -> None:
        self.settings = settings
        self.names = list(names or APPS)
        self.seed = seed
        self.served: dict[str, ServedApp] = {}
        self.edi_supplier = names is None and not settings.supplier_sftp_host  # a local drop folder to answer from
        self._edi: tuple[threading.Thread, threading.Event] | None = None

    @property
    def urls(self) -> dict[str, str]:
        return {name: served.base_url for name, served in self.served.items()}

    def start(self) -> SandboxStack:
        host = self.settings.sandbox_host
        try:
            for name in self.names:
                port = port_of(name, self.settings)
                try:
                    served = ServedApp(build_app(name, self.settings, seed=self.seed), host=host, port=port)
                except OSError as exc:
                    raise RuntimeError(f"the {name} sandbox cannot listen on {host}:{port} ({exc.strerror}): is "
                                       "another sandbox running? Stop it or set RETAILFLOW_SANDBOX_PORTS.") from None
                self.served[name] = served.start()
            if self.edi_supplier:
                self._edi = start_edi_supplier(self.settings, seed=self.seed)
        except BaseException:
            self.stop()
            raise
        log.info("sandbox.started", sandboxes=self.urls,
                 edi_supplier=str(supplier_drop_folder(self.settings)) if self._edi else None)
        return self

    def stop(self) -> None:
        if self._edi is not None:
            thread, stop = self._edi
            stop.set()
            thread.join(timeout=10)
            self._edi = None
        for name in reversed(list(self.served)):
            self.served.pop(name).stop()

    def app(self, name: str) -> FastAPI:
        return self.served[name].app

    def __enter__(self) -> SandboxStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
