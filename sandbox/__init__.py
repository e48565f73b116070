"""Vendor sandboxes: faithful subsets of vendor APIs served locally, with fault injection (see sandbox/faults.py).

Never imported by the product path. `APPS` maps a sandbox name to ``"module:factory"``; the factory takes no
arguments and returns a FastAPI app. `retailflow-sandbox` serves every entry on the port settings give it
(``RETAILFLOW_SANDBOX_PORTS``, default `DEFAULT_PORTS`). Importing this package imports no sandbox module.
"""

from __future__ import annotations

APPS: dict[str, str] = {
    "avatax": "sandbox.avatax:create_app",
    "erpnext": "sandbox.erpnext:create_app",
    "shopify": "sandbox.shopify:create_app",
    "amazon": "sandbox.amazon:create_app",
    "shipstation": "sandbox.shipstation:create_app",
    "shipbob": "sandbox.shipbob:create_app",
}

# name → default port on 127.0.0.1 (overridable per name with RETAILFLOW_SANDBOX_PORTS='{"avatax": 9101}')
DEFAULT_PORTS: dict[str, int] = {
    "avatax": 8101,
    "erpnext": 8102,
    "shopify": 8103,
    "amazon": 8104,
    "shipstation": 8105,
    "shipbob": 8106,
}
