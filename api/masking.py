"""Customers' personal data kept out of API answers for principals below analyst (viewer, finance).

What is masked: names, e-mails, phones, street lines and postal codes: every value inside a personal-data object
(`customer`, `shipping_address`, `billing_address`, `ship_to`, … — the canonical `Customer` and `Address` and
the vendors' equivalents) but for the coarse location kept for tax and reporting (country, region, city) and
pseudonymous ids; the personal keys themselves (`email`, `phone`, `first_name`, `postal_code`, `line1`, …)
wherever they appear; and any e-mail address inside free text (error messages, reasons). Raw quarantined bodies
are not masked but withheld (api/routers/ops.py).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from api.auth import Principal

MASK = "***"

# objects whose every value is personal, but for KEEP
PERSONAL_OBJECTS = frozenset({
    "customer", "shippingaddress", "billingaddress", "shipto", "billto", "address", "addresses",
    "defaultaddress", "buyer", "buyerinfo", "recipient", "shippinginfo", "destination", "destinationaddress",
    "contact", "buyeraddress",
})
KEEP = frozenset({"country", "countrycode", "region", "province", "provincecode", "state", "statecode", "city",
                  "externalid", "id", "customerid", "taxexempt", "currency", "acceptsmarketing"})
# keys personal wherever they are
PERSONAL_KEYS = frozenset({
    "email", "contactemail", "customeremail", "buyeremail", "phone", "phonenumber", "mobile", "firstname",
    "lastname", "fullname", "customername", "buyername", "recipientname", "line1", "line2", "line3", "address1",
    "address2", "address3", "addressline1", "addressline2", "addressline3", "street", "street1", "street2",
    "postalcode", "zip", "zipcode", "latitude", "longitude",
})
# never masked: the actor is the authenticated principal (a member of staff or a system), not a customer
STAFF_KEYS = frozenset({"actor"})
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")


def _norm(key: str) -> str:
    return key.replace("_", "").replace("-", "").replace(" ", "").lower()


def _blank(value: Any) -> Any:
    """The masked form of a personal value: None stays None, containers keep their shape."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, dict):
        return {k: (v if _norm(str(k)) in KEEP else _blank(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_blank(v) for v in value]
    return MASK


def mask_personal(value: Any) -> Any:
    """A copy of JSON-like data with customers' personal data masked."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = _norm(str(k))
            if key in STAFF_KEYS:
                out[k] = v
            elif key in PERSONAL_OBJECTS and isinstance(v, dict | list):
                out[k] = _blank(v)
            elif key in PERSONAL_KEYS:
                out[k] = _blank(v)
            else:
                out[k] = mask_personal(v)
        return out
    if isinstance(value, list | tuple):
        return [mask_personal(v) for v in value]
    if isinstance(value, str):
        return EMAIL.sub(MASK, value) if "@" in value else value
    return value


def for_principal(principal: Principal, value: Any) -> Any:
    """`value` as `principal` may see it: unchanged for analysts and admins; for the others JSON data (pydantic
    models dumped first) with the personal data masked."""
    if principal.sees_personal_data():
        return value
    if isinstance(value, BaseModel):
        return mask_personal(value.model_dump(mode="json"))
    if isinstance(value, list):
        return [mask_personal(v.model_dump(mode="json") if isinstance(v, BaseModel) else v) for v in value]
    return mask_personal(value)
