"""Avalara AvaTax REST v2 as the tax engine (the TaxAdapter port), with the canonical ⇄ AvaTax mapping.

Calls (https://developer.avalara.com/api-reference/avatax/rest/v2/):

* quote     — ``GET /api/v2/companies/{companyCode}/transactions/{code}`` (idempotency: a retried activity gets
  the document it already recorded), else ``POST /api/v2/transactions/create`` with ``type: SalesInvoice``,
  ``commit: false``: a recorded but *uncommitted* invoice (status ``Saved``), AvaTax's pattern for an order
  placed but not yet shipped. (A ``SalesOrder`` is an estimate AvaTax does not store; the port's ``commit`` gets
  only the transaction code, so the document must exist in AvaTax by then — see `estimate` for SalesOrder.)
* requote   — ``POST /api/v2/transactions/create`` ``type: SalesOrder`` prices the changed order (nothing is
  recorded), then ``POST .../transactions/{code}/adjust`` replaces the uncommitted invoice with it; committed →
  TaxRejected.
* commit    — ``POST .../transactions/{code}/commit`` ``{"commit": true}``; already Committed → no-op.
* void      — ``POST .../transactions/{code}/void`` ``{"code": "DocVoided"}``; absent or Cancelled → False.
* refund_tax — ``POST /api/v2/transactions/create`` ``type: ReturnInvoice`` (committed, ``referenceCode`` the
  original) with a line-level ``taxOverride`` of type ``TaxAmount`` (the negative tax given back); idempotent by
  its code (looked up first). void_tax_refund voids it.

Auth is HTTP Basic (account id : license key); the key is a SecretStr and never logged (adapters/http.py).
Amounts go out as JSON numbers built from Decimal (exact for money's ≤ 15 significant digits) and come back as
Decimal (`parse_float=Decimal`); nothing is computed in float.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any
from urllib.parse import quote as urlquote

import httpx
from pydantic import SecretStr

from adapters.http import VendorHttp
from canonical.errors import BusinessError, InvalidAddress, TaxRejected
from canonical.money import Money, quantize
from canonical.order import Address, Order, TaxQuote, TaxQuoteLine
from canonical.vendor_versions import VendorApiVersion

SHIPPING_LINE = "shipping"
NON_TAXABLE_CODE = "NT"

# The vendor API this adapter speaks (canonical/vendor_versions.py). Avalara's policy
# (https://developer.avalara.com/api-versioning): majors n and n-1 stay active, n-2 is deprecated when n ships and
# decommissioned 18 months after n is GA. REST v2 is the current major; no successor, so no date.
API_VERSIONS = (
    VendorApiVersion("avalara", "AvaTax REST (/api/v2)", "v2", released=None, sunset=None,
                     source="https://developer.avalara.com/api-versioning",
                     note="current major; a decommission date exists only once v4 is GA (n-2 is decommissioned "
                          "18 months after n)"),
)

# AvaTax error codes that mean "this address cannot be located" (AvaTax error reference, avatax/errors/*).
_ADDRESS_ERRORS = {"AddressRangeError", "AddressUnknownStreet", "AddressNotGeocoded", "InvalidAddress",
                   "AddressIncomplete", "InvalidAddressTextCase", "MissingAddress", "InvalidZipForStateError",
                   "InvalidPostalCode", "InsufficientAddressInformation"}


def _num(value: Decimal | int) -> int | float:
    """A Decimal as a JSON number: int when integral, else float (its repr is the same digits)."""
    d = Decimal(value)
    return int(d) if d == d.to_integral_value() else float(d)


def _dec(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))


def avatax_error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    err = body.get("error") if isinstance(body, dict) else None
    return err.get("code") if isinstance(err, dict) else None


def map_avatax_error(response: httpx.Response, _context: Any) -> BusinessError | None:
    """AvaTax 4xx → typed business faults: address problems park as InvalidAddress, the rest as TaxRejected."""
    code = avatax_error_code(response) or ""
    try:
        err = response.json().get("error", {})
        details = err.get("details") or [{}]
        message = " ".join(x for x in (err.get("message"), details[0].get("description")) if x)
    except (ValueError, AttributeError):
        message = response.text[:300]
    info = {"vendor": "avalara", "status": response.status_code, "avatax_code": code}
    if code in _ADDRESS_ERRORS or "Address" in code:
        return InvalidAddress(f"AvaTax cannot locate the address: {message}", details=info)
    return TaxRejected(f"AvaTax refused the transaction ({code or response.status_code}): {message}", details=info)


# -- mapping canonical ⇄ AvaTax ---------------------------------------------------------------------------
def avatax_address(address: Address) -> dict[str, str]:
    out = {"line1": address.line1, "line2": address.line2, "city": address.city, "region": address.region,
           "country": address.country, "postalCode": address.postal_code}
    return {k: v for k, v in out.items() if v}


def transaction_body(order: Order, *, code: str, doc_type: str, company_code: str, default_tax_code: str,
                     shipping_tax_code: str, ship_from: dict[str, str] | None, commit: bool = False) -> dict:
    """CreateTransactionModel for an order: one line per order line (net of line and order-level discounts, the
    latter spread over the lines in proportion, as the embedded engine does) plus a shipping line."""
    ship_to = order.shipping_address or order.billing_address
    if ship_to is None:
        raise InvalidAddress("the order has no shipping or billing address to locate tax")
    addresses: dict[str, dict] = (
        {"ShipFrom": dict(ship_from), "ShipTo": avatax_address(ship_to)} if ship_from
        else {"SingleLocation": avatax_address(ship_to)})
    nets = [line.net for line in order.lines]
    shares = order.order_discount_total.allocate([n.amount for n in nets])
    lines = []
    for line, net, share in zip(order.lines, nets, shares, strict=True):
        body_line: dict[str, Any] = {
            "number": line.line_id, "quantity": line.quantity, "amount": _num((net - share).amount),
            "taxCode": default_tax_code if line.taxable else NON_TAXABLE_CODE,
            "itemCode": line.channel_sku, "description": (line.name or line.channel_sku)[:2048],
        }
        if order.taxes_included:
            body_line["taxIncluded"] = True
        lines.append(body_line)
    if order.shipping_lines:
        ship: dict[str, Any] = {"number": SHIPPING_LINE, "quantity": 1, "amount": _num(order.shipping_net.amount),
                                "taxCode": shipping_tax_code, "itemCode": "SHIPPING", "description": "Shipping"}
        if order.taxes_included:
            ship["taxIncluded"] = True
        lines.append(ship)
    customer = order.customer
    body: dict[str, Any] = {
        "type": doc_type, "code": code, "companyCode": company_code, "date": order.created_at.date().isoformat(),
        "customerCode": (customer.external_id or customer.email or f"{order.channel}-guest")[:50],
        "purchaseOrderNo": (order.order_number or order.external_order_id)[:50],
        "addresses": addresses, "lines": lines, "commit": commit, "currencyCode": order.currency,
        "description": f"{order.channel} order {order.order_number or order.external_order_id}"[:2048],
    }
    if customer.tax_exempt:
        body["exemptionNo"] = "retailflow-exempt"
    return body


def quote_from_transaction(code: str, order: Order, tx: dict) -> TaxQuote:
    """TransactionModel → TaxQuote. Each order line's tax is AvaTax's line tax; the rate is the sum of the line's
    jurisdiction rates; if AvaTax rounded the document total differently from its lines, the cent goes to the
    largest line so the quote balances (TaxQuote checks it)."""
    cur = order.currency
    if tx.get("currencyCode") and tx["currencyCode"] != cur:
        raise TaxRejected(f"AvaTax priced {code} in {tx['currencyCode']}, the order is in {cur}")
    by_number = {str(x.get("lineNumber")): x for x in tx.get("lines") or []}
    lines = []
    for line in order.lines:
        tl = by_number.get(line.line_id)
        if tl is None:
            raise TaxRejected(f"AvaTax's answer for {code} lacks line {line.line_id}")
        rate = sum((_dec(d.get("rate")) for d in tl.get("details") or []), Decimal(0))
        lines.append(TaxQuoteLine(line_id=line.line_id, taxable_amount=Money.of(_dec(tl.get("taxableAmount")), cur),
                                  rate=rate, tax=Money.of(quantize(_dec(tl.get("tax")), cur), cur)))
    ship = by_number.get(SHIPPING_LINE)
    shipping_tax = Money.of(quantize(_dec(ship.get("tax")), cur), cur) if ship else Money.zero(cur)
    total = Money.of(quantize(_dec(tx.get("totalTax")), cur), cur)
    summed = sum((x.tax for x in lines), Money.zero(cur)) + shipping_tax
    if summed != total and lines:
        i = max(range(len(lines)), key=lambda k: lines[k].tax.amount)
        lines[i] = lines[i].model_copy(update={"tax": lines[i].tax + (total - summed)})
    names = [s.get("jurisName") for s in tx.get("summary") or [] if s.get("jurisName")]
    place = "-".join(x for x in (tx.get("country"), tx.get("region")) if x)
    jurisdiction = f"{place} ({', '.join(names)})" if names else (place or "AvaTax")
    return TaxQuote(transaction_code=code, currency=cur, jurisdiction=jurisdiction[:500],
                    taxes_included=order.taxes_included, lines=lines, shipping_tax=shipping_tax, total_tax=total)


class AvalaraTax:
    """TaxAdapter on AvaTax REST v2."""

    vendor = "avalara"

    def __init__(self, base_url: str, account_id: str, license_key: SecretStr, *, company_code: str = "DEFAULT",
                 default_tax_code: str = "P0000000", shipping_tax_code: str = "FR020100",
                 ship_from: dict[str, str] | None = None, timeout: float = 20.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.company_code = company_code
        self.default_tax_code = default_tax_code
        self.shipping_tax_code = shipping_tax_code
        self.ship_from = ship_from
        self.http = VendorHttp(
            self.vendor, base_url, auth=httpx.BasicAuth(account_id, license_key.get_secret_value()),
            headers={"Accept": "application/json", "X-Avalara-Client": "retailflow; 1.0; python-httpx; REST; v2"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)), error_mapper=map_avatax_error,
            transport=transport)

    @classmethod
    def from_settings(cls, settings: Any) -> AvalaraTax:
        return cls(settings.avalara_base_url, settings.avalara_account_id, settings.avalara_license_key,
                   company_code=settings.avalara_company_code, default_tax_code=settings.avalara_default_tax_code,
                   shipping_tax_code=settings.avalara_shipping_tax_code, ship_from=settings.avalara_ship_from,
                   timeout=settings.avalara_timeout_seconds)

    # -- HTTP -------------------------------------------------------------------------------------------
    def _tx_path(self, code: str, action: str = "") -> str:
        path = f"/api/v2/companies/{urlquote(self.company_code, safe='')}/transactions/{urlquote(code, safe='')}"
        return f"{path}/{action}" if action else path

    def _call(self, method: str, path: str, *, body: dict | None = None, not_found: bool = False) -> dict | None:
        response = self.http.request(method, path, json=body, not_found=not_found)
        if response is None:
            return None
        return json.loads(response.content, parse_float=Decimal)

    def get_transaction(self, code: str) -> dict | None:
        """The latest version of a recorded transaction, or None (EntityNotFoundError)."""
        return self._call("GET", self._tx_path(code), not_found=True)

    def _body(self, order: Order, code: str, doc_type: str, *, commit: bool = False) -> dict:
        return transaction_body(order, code=code, doc_type=doc_type, company_code=self.company_code,
                                default_tax_code=self.default_tax_code, shipping_tax_code=self.shipping_tax_code,
                                ship_from=self.ship_from, commit=commit)

    # -- port -------------------------------------------------------------------------------------------
    def estimate(self, code: str, order: Order) -> TaxQuote:
        """Price the order as a ``SalesOrder``: AvaTax calculates and records nothing."""
        tx = self._call("POST", "/api/v2/transactions/create", body=self._body(order, code, "SalesOrder"))
        assert tx is not None
        return quote_from_transaction(code, order, tx)

    def quote(self, transaction_code: str, order: Order) -> TaxQuote:
        existing = self.get_transaction(transaction_code)
        if existing is not None and existing.get("status") != "Cancelled":
            return quote_from_transaction(transaction_code, order, existing)
        tx = self._call("POST", "/api/v2/transactions/create",
                        body=self._body(order, transaction_code, "SalesInvoice"))
        assert tx is not None
        return quote_from_transaction(transaction_code, order, tx)

    def requote(self, transaction_code: str, order: Order) -> TaxQuote:
        existing = self.get_transaction(transaction_code)
        if existing is None or existing.get("status") == "Cancelled":
            return self.quote(transaction_code, order)
        if existing.get("status") in ("Committed", "Posted"):
            raise TaxRejected(f"tax transaction {transaction_code} is committed and cannot be re-priced")
        estimate = self.estimate(transaction_code, order)
        if estimate == quote_from_transaction(transaction_code, order, existing):
            return estimate  # already priced this way (a retried activity): nothing to adjust
        tx = self._call("POST", self._tx_path(transaction_code, "adjust"), body={
            "adjustmentReason": "PriceAdjusted", "adjustmentDescription": "Order lines cancelled before shipping",
            "newTransaction": self._body(order, transaction_code, "SalesInvoice")})
        assert tx is not None
        return quote_from_transaction(transaction_code, order, tx)

    def commit(self, transaction_code: str) -> None:
        existing = self.get_transaction(transaction_code)
        if existing is None:
            raise TaxRejected(f"no tax transaction {transaction_code} to commit")
        status = existing.get("status")
        if status in ("Committed", "Posted"):
            return
        if status == "Cancelled":
            raise TaxRejected(f"tax transaction {transaction_code} is voided and cannot be committed")
        self._call("POST", self._tx_path(transaction_code, "commit"), body={"commit": True})

    def void(self, transaction_code: str) -> bool:
        existing = self.get_transaction(transaction_code)
        if existing is None or existing.get("status") == "Cancelled":
            return False
        self._call("POST", self._tx_path(transaction_code, "void"), body={"code": "DocVoided"})
        return True

    def refund_tax(self, code: str, original_code: str, amount: Money) -> None:
        existing = self.get_transaction(code)
        if existing is not None and existing.get("status") != "Cancelled":
            return
        original = self.get_transaction(original_code)
        if original is None:
            raise TaxRejected(f"no tax transaction {original_code} to refund tax against")
        if original.get("currencyCode") and original["currencyCode"] != amount.currency:
            raise TaxRejected(f"tax refund in {amount.currency}, transaction {original_code} in "
                              f"{original['currencyCode']}")
        self._call("POST", "/api/v2/transactions/create", body=refund_body(
            code, original_code, amount, original, company_code=self.company_code,
            tax_code=self.default_tax_code))

    def void_tax_refund(self, code: str) -> bool:
        return self.void(code)

    def close(self) -> None:
        self.http.close()


def refund_body(code: str, original_code: str, amount: Money, original: dict, *, company_code: str,
                tax_code: str) -> dict:
    """A committed ReturnInvoice giving back `amount` of tax: one zero-amount line whose tax is overridden."""
    addr = (original.get("addresses") or [{}])[0]
    location = {k: addr[k] for k in ("line1", "line2", "city", "region", "country", "postalCode") if addr.get(k)}
    if "country" not in location:
        location["country"] = original.get("country") or "US"
    return {
        "type": "ReturnInvoice", "code": code, "companyCode": company_code,
        "date": str(original.get("date") or "")[:10] or None,
        "customerCode": original.get("customerVendorCode") or original.get("customerCode") or "retailflow",
        "purchaseOrderNo": original.get("purchaseOrderNo") or original_code[:50],
        "referenceCode": original_code, "addresses": {"SingleLocation": location},
        "lines": [{"number": "1", "quantity": 1, "amount": 0, "taxCode": tax_code, "itemCode": "TAX-REFUND",
                   "description": f"Tax refunded against {original_code}",
                   "taxOverride": {"type": "TaxAmount", "taxAmount": _num(-amount.amount),
                                   "reason": "Refund of tax collected"}}],
        "commit": True, "currencyCode": amount.currency, "description": f"Tax refund {code}"[:2048],
    }
