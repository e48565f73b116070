"""AvaTax REST v2 sandbox: the subset adapters/tax/avalara.py calls, answering in AvaTax's published shapes
(the SDK fixtures in tests/fixtures/avalara/), with HTTP Basic auth and fault injection (sandbox/faults.py).

Endpoints: ``POST /api/v2/transactions/create``; ``GET /api/v2/companies/{companyCode}/transactions/
{transactionCode}``; ``POST .../commit``, ``.../void``, ``.../adjust``. SalesOrder documents are priced, never
stored (as in AvaTax); SalesInvoice and ReturnInvoice are stored by company and code.

Tax: a small jurisdiction table. California uses the four jurisdictions of the published Irvine fixture
(state 6 %, county 0.25 %, two special districts 0.5 % and 1 %), so a 100.00 line costs 7.75 as in the fixture;
other US states one state rate; a few VAT countries one national rate; elsewhere no tax. Each jurisdiction's
tax is rounded half-up to the cent, the line's tax is their sum.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from sandbox.common import StateStore, make_app
from sandbox.faults import FaultInjector, install_faults

# (jurisType, jurisCode, jurisName, rate, taxName, summary jurisType, sourcing, signatureCode, stateAssignedNo)
_CA = [("STA", "06", "CALIFORNIA", "0.06", "CA STATE TAX", "State", "Origin", "AGAM", ""),
       ("CTY", "059", "ORANGE", "0.0025", "CA COUNTY TAX", "County", "Origin", "AHXU", ""),
       ("STJ", "EMAZ0", "ORANGE COUNTY DISTRICT TAX SP", "0.005", "CA SPECIAL TAX", "Special", "Destination",
        "EMAZ", "037"),
       ("STJ", "EMTN0", "ORANGE CO LOCAL TAX SL", "0.01", "CA SPECIAL TAX", "Special", "Origin", "EMTN", "30")]
_US_STATE_RATES = {"NY": "0.04", "TX": "0.0625", "WA": "0.065", "KY": "0.06", "FL": "0.06", "IL": "0.0625",
                   "NJ": "0.06625", "PA": "0.06", "MA": "0.0625", "GA": "0.04"}
_VAT = {"DE": "0.19", "GB": "0.20", "FR": "0.20", "NL": "0.21", "IT": "0.22", "ES": "0.21", "CA": "0.05"}
_DOC_TYPES = {"SalesOrder", "SalesInvoice", "ReturnOrder", "ReturnInvoice"}
_CENT = Decimal("0.01")


def _jurisdictions(country: str, region: str | None) -> list[tuple]:
    if country == "US":
        if region == "CA":
            return _CA
        rate = _US_STATE_RATES.get(region or "")
        if rate:
            return [("STA", region, f"{region} STATE", rate, f"{region} STATE TAX", "State", "Origin", "", "")]
        return []
    if country in _VAT:
        return [("CNT", country, country, _VAT[country], f"{country} VAT", "Country", "Destination", "", "")]
    return []


def avatax_error(status: int, code: str, message: str, description: str, number: int = 0, *,
                 target: str = "HttpRequest", severity: str = "Error") -> JSONResponse:
    """AvaTax's error envelope (SOURCES.md: {"error": {code, message, target, details: [...]}})."""
    return JSONResponse(status_code=status, content={"error": {
        "code": code, "message": message, "target": target,
        "details": [{"code": code, "number": number, "message": message, "description": description,
                     "faultCode": "Client", "helpLink": f"/avatax/errors/{code}", "severity": severity}]}})


def _invalid(description: str) -> JSONResponse:
    return avatax_error(400, "ModelStateInvalid", "One or more parameters in your request were incorrect.",
                        description, 70)


class _Bad(Exception):
    def __init__(self, response: JSONResponse) -> None:
        self.response = response


def _money(value: Any, field: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise _Bad(_invalid(f"The value '{value}' is not a valid '{field}'.")) from None
    if not d.is_finite():
        raise _Bad(_invalid(f"The value '{value}' is not a valid '{field}'."))
    return d


def _num(d: Decimal) -> int | float:
    return int(d) if d == d.to_integral_value() else float(d)


class AvaTaxSandbox:
    def __init__(self, *, account_id: str | None = None, license_key: str | None = None) -> None:
        self.account_id = account_id
        self.license_key = license_key
        self.store = StateStore(id_start=289450369)

    # -- auth ---------------------------------------------------------------------------------------------
    def check_auth(self, request: Request) -> JSONResponse | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith(("Basic ", "Bearer ")):
            return avatax_error(401, "AuthenticationIncomplete", "Authentication Incomplete.",
                                "You must provide an Authorization header of the type Basic or Bearer to "
                                "authenticate correctly.  ", 34, target="HttpRequestHeaders",
                                severity="Exception")
        if header.startswith("Basic ") and self.account_id is not None:
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", ""
            if user != self.account_id or password != self.license_key:
                return avatax_error(401, "AuthenticationException", "Authentication failed.",
                                    "The account id or license key is incorrect.", 18,
                                    target="HttpRequestHeaders")
        return None

    # -- calculation ----------------------------------------------------------------------------------------
    def calculate(self, body: dict, *, doc_id: int, version: int = 1, status: str,
                  adjustment: tuple[str, str] = ("NotAdjusted", "")) -> dict:
        if not isinstance(body, dict):
            raise _Bad(_invalid("The request body must be a CreateTransactionModel object."))
        doc_type = body.get("type") or "SalesOrder"
        if doc_type not in _DOC_TYPES:
            raise _Bad(_invalid(f"The value '{doc_type}' is not a valid 'type'."))
        for field in ("companyCode", "date", "customerCode"):
            if not body.get(field):
                raise _Bad(_invalid(f"The {field} field is required."))
        try:
            date = datetime.strptime(str(body["date"])[:10], "%Y-%m-%d").date().isoformat()
        except ValueError:
            raise _Bad(_invalid(f"The value '{body['date']}' is not a valid 'date'.")) from None
        addresses = body.get("addresses") or {}
        if not isinstance(addresses, dict):
            raise _Bad(_invalid("The addresses field must be an object."))
        ship_to = addresses.get("ShipTo") or addresses.get("SingleLocation")
        ship_from = addresses.get("ShipFrom") or ship_to
        if not ship_to:
            raise _Bad(avatax_error(400, "InsufficientAddressInformation", "Insufficient address information.",
                                    "A ShipTo or SingleLocation address is required.", 63))
        country = str(ship_to.get("country") or "").upper()
        region = str(ship_to.get("region") or "").upper() or None
        if len(country) != 2:
            raise _Bad(avatax_error(400, "InvalidCountry", "Invalid country.",
                                    f"The country '{country}' is not a valid ISO 3166 code.", 71))
        if country == "US" and not (ship_to.get("postalCode") or (ship_to.get("city") and region)):
            raise _Bad(avatax_error(400, "AddressNotGeocoded", "The address could not be geocoded.",
                                    "Provide a postal code, or a city and a region.", 117))
        lines_in = body.get("lines")
        if not isinstance(lines_in, list) or not lines_in:
            raise _Bad(_invalid("The lines field is required."))
        currency = body.get("currencyCode") or "USD"
        exempt = bool(body.get("exemptionNo"))
        juris = _jurisdictions(country, region)
        ids = self.store.ids
        address_id = ids.next_int("address") + 742644965
        lines, summary = [], {}
        total_amount = total_tax = total_taxable = total_exempt = Decimal(0)
        for n, line in enumerate(lines_in, start=1):
            if not isinstance(line, dict):
                raise _Bad(_invalid("Each line must be an object."))
            amount = _money(line.get("amount", 0), "amount")
            quantity = _money(line.get("quantity", 1), "quantity")
            number = str(line.get("number") or n)
            tax_code = line.get("taxCode") or "P0000000"
            taxable_line = tax_code != "NT" and not exempt
            included = bool(line.get("taxIncluded"))
            rate_total = sum((Decimal(j[3]) for j in juris), Decimal(0)) if taxable_line else Decimal(0)
            base = (amount / (1 + rate_total)).quantize(_CENT, ROUND_HALF_UP) if included else amount
            line_id = ids.next_int("line") + 1052893541
            details, line_tax = [], Decimal(0)
            override = line.get("taxOverride") or {}
            if override.get("type") == "TaxAmount":
                line_tax = _money(override.get("taxAmount", 0), "taxAmount").quantize(_CENT, ROUND_HALF_UP)
            elif taxable_line:
                for j in juris:
                    rate = Decimal(j[3])
                    tax = (base * rate).quantize(_CENT, ROUND_HALF_UP)
                    line_tax += tax
                    details.append(self._detail(j, tax, base, rate, line_id, doc_id, address_id, country, region))
                    s = summary.setdefault(j[2], {"j": j, "taxable": Decimal(0), "tax": Decimal(0)})
                    s["taxable"] += base
                    s["tax"] += tax
            if included and override.get("type") != "TaxAmount":
                line_tax = amount - base if taxable_line else Decimal(0)
            exempt_amount = Decimal(0) if taxable_line else amount
            total_amount += base
            total_tax += line_tax
            total_taxable += base if taxable_line else Decimal(0)
            total_exempt += exempt_amount
            lines.append({
                "id": line_id, "transactionId": doc_id, "lineNumber": number, "boundaryOverrideId": 0,
                "customerUsageType": "", "description": line.get("description") or "",
                "destinationAddressId": address_id, "originAddressId": address_id,
                "discountAmount": 0, "exemptAmount": _num(exempt_amount), "exemptCertId": 0,
                "exemptNo": body.get("exemptionNo") or "", "isItemTaxable": taxable_line, "isSSTP": False,
                "itemCode": line.get("itemCode") or "", "lineAmount": _num(base), "quantity": _num(quantity),
                "ref1": "", "ref2": "", "reportingDate": date, "revAccount": "", "sourcing": "Mixed",
                "tax": _num(line_tax), "taxableAmount": _num(base if taxable_line else Decimal(0)),
                "taxCalculated": _num(line_tax), "taxCode": tax_code, "taxCodeId": 38007, "taxDate": date,
                "taxEngine": "", "taxOverrideType": override.get("type") or "None",
                "taxOverrideAmount": _num(line_tax) if override else 0,
                "taxOverrideReason": override.get("reason") or "", "taxIncluded": included,
                "details": details,
                "lineLocationTypes": [
                    {"documentLineLocationTypeId": ids.next_int("llt") + 589531648, "documentLineId": line_id,
                     "documentAddressId": address_id, "locationTypeCode": code}
                    for code in ("PointOfOrderOrigin", "PointOfOrderAcceptance", "ShipTo", "ShipFrom")],
                "parameters": {},
            })
        now = datetime.now(UTC)
        addr_out = {"line1": "", "line2": "", "line3": "", "city": "", "region": "", "postalCode": "",
                    "country": ""}
        addr_out.update({k: str(v) for k, v in ship_to.items() if k in addr_out})
        return {
            "id": doc_id, "code": body.get("code") or f"{doc_id}", "companyId": 559766, "date": date,
            "paymentDate": "1900-01-01", "status": status, "type": doc_type, "batchCode": "",
            "currencyCode": currency, "customerUsageType": "", "customerVendorCode": body["customerCode"],
            "exemptNo": body.get("exemptionNo") or "", "reconciled": False,
            "purchaseOrderNo": body.get("purchaseOrderNo") or "", "referenceCode": body.get("referenceCode") or "",
            "salespersonCode": "", "taxOverrideType": "None", "taxOverrideAmount": 0, "taxOverrideReason": "",
            "totalAmount": _num(total_amount), "totalExempt": _num(total_exempt), "totalTax": _num(total_tax),
            "totalTaxable": _num(total_taxable), "totalTaxCalculated": _num(total_tax),
            "adjustmentReason": adjustment[0], "adjustmentDescription": adjustment[1], "locked": False,
            "region": region or "", "country": country, "version": version, "softwareVersion": "16.12.4.4",
            "originAddressId": address_id, "destinationAddressId": address_id,
            "exchangeRateEffectiveDate": date, "exchangeRate": 1, "isSellerImporterOfRecord": False,
            "description": body.get("description") or "",
            "modifiedDate": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}",
            "modifiedUserId": 7097, "taxDate": f"{date}T00:00:00", "lines": lines,
            "addresses": [{"id": address_id, "transactionId": doc_id, "boundaryLevel": "Zip5", **addr_out,
                           "taxRegionId": 2127863, "latitude": "", "longitude": ""}],
            "locationTypes": [
                {"documentLocationTypeId": ids.next_int("lt") + 360174, "documentId": doc_id,
                 "documentAddressId": address_id, "locationTypeCode": code}
                for code in ("PointOfOrderOrigin", "PointOfOrderAcceptance", "ShipTo", "ShipFrom")],
            "summary": [{
                "country": country, "region": region or "", "jurisType": s["j"][5], "jurisCode": s["j"][1],
                "jurisName": s["j"][2], "taxAuthorityType": 45, "stateAssignedNo": s["j"][8], "taxType": "Sales",
                "taxName": s["j"][4], "rateType": "General", "taxable": _num(s["taxable"]),
                "rate": _num(Decimal(s["j"][3])), "tax": _num(s["tax"]), "taxCalculated": _num(s["tax"]),
                "nonTaxable": 0, "exemption": 0} for s in summary.values()],
            "parameters": {},
            "_ship_from": ship_from,  # removed before answering
        }

    def _detail(self, j: tuple, tax: Decimal, base: Decimal, rate: Decimal, line_id: int, doc_id: int,
                address_id: int, country: str, region: str | None) -> dict:
        return {
            "id": self.store.ids.next_int("detail") + 1911631560, "transactionLineId": line_id,
            "transactionId": doc_id, "addressId": address_id, "country": country, "region": region or "",
            "stateFIPS": "06" if region == "CA" else "", "exemptAmount": 0, "exemptReasonId": 4, "inState": True,
            "jurisCode": j[1], "jurisName": j[2], "jurisdictionId": 5000531, "signatureCode": j[7],
            "stateAssignedNo": j[8], "jurisType": j[0], "nonTaxableAmount": 0, "nonTaxableRuleId": 0,
            "nonTaxableType": "RateRule", "rate": _num(rate), "rateRuleId": 1343430, "rateSourceId": 3,
            "serCode": " ", "sourcing": j[6], "tax": _num(tax), "taxableAmount": _num(base), "taxType": "Sales",
            "taxName": j[4], "taxAuthorityTypeId": 45, "taxRegionId": 2127863, "taxCalculated": _num(tax),
            "taxOverride": 0, "rateType": "General", "rateTypeCode": "G", "taxableUnits": _num(base),
            "nonTaxableUnits": 0, "exemptUnits": 0, "unitOfBasis": "PerCurrencyUnit",
        }

    @staticmethod
    def public(doc: dict) -> dict:
        return {k: v for k, v in doc.items() if not k.startswith("_")}

    def key(self, company: str, code: str) -> str:
        return f"{company}\x1f{code}"


def create_app(*, account_id: str | None = None, license_key: str | None = None,
               injector: FaultInjector | None = None) -> FastAPI:
    """The AvaTax sandbox app; Basic auth must match `account_id`/`license_key` (default: the settings')."""
    if account_id is None or license_key is None:
        from runtime.settings import get_settings

        settings = get_settings()
        account_id = settings.avalara_account_id if account_id is None else account_id
        license_key = settings.avalara_license_key.get_secret_value() if license_key is None else license_key
    sb = AvaTaxSandbox(account_id=account_id, license_key=license_key)
    app = make_app("AvaTax REST v2", __doc__ or "")
    app.state.sandbox = sb
    install_faults(app, injector or FaultInjector(), reset_hooks=[sb.store.reset])

    async def _json(request: Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            raise _Bad(_invalid("The request body is not valid JSON.")) from None

    def _not_found(code: str) -> JSONResponse:
        return avatax_error(404, "EntityNotFoundError", "Document not found.",
                            f"The Document with code '{code}' was not found.", 4)

    def _store(company: str, code: str, doc: dict, body: dict) -> dict:
        doc["_body"] = body
        sb.store.put("transactions", sb.key(company, code), doc)
        return doc

    @app.exception_handler(_Bad)
    async def _bad(_request: Request, exc: _Bad) -> JSONResponse:
        return exc.response

    @app.post("/api/v2/transactions/create")
    async def create_transaction(request: Request) -> JSONResponse:
        if (denied := sb.check_auth(request)) is not None:
            return denied
        body = await _json(request)
        if not isinstance(body, dict):
            return _invalid("The request body must be a CreateTransactionModel object.")
        doc_type = body.get("type") or "SalesOrder"
        code = str(body.get("code") or "")
        if doc_type in ("SalesOrder", "ReturnOrder"):  # estimates: priced, never stored
            doc = sb.calculate(body, doc_id=0, status="Temporary")
            return JSONResponse(sb.public(doc), status_code=201)
        company = str(body.get("companyCode") or "")
        with sb.store.lock:
            code = code or f"{sb.store.ids.next_int('code')}"
            existing = sb.store.get("transactions", sb.key(company, code))
            if existing is not None and existing["status"] != "Cancelled" and existing["status"] != "Saved":
                return avatax_error(400, "DocumentCodeConflict", "Document code conflict.",
                                    f"A committed document with code '{code}' already exists.", 303)
            version = existing["version"] + 1 if existing is not None else 1
            doc_id = sb.store.ids.next_int("doc") + 289450368
            doc = sb.calculate({**body, "code": code}, doc_id=doc_id, version=version,
                               status="Committed" if body.get("commit") else "Saved")
            _store(company, code, doc, body)
        return JSONResponse(sb.public(doc), status_code=201)

    @app.get("/api/v2/companies/{companyCode}/transactions/{transactionCode}")
    async def get_transaction(companyCode: str, transactionCode: str, request: Request) -> JSONResponse:  # noqa: N803
        if (denied := sb.check_auth(request)) is not None:
            return denied
        doc = sb.store.get("transactions", sb.key(companyCode, transactionCode))
        if doc is None:
            return _not_found(transactionCode)
        return JSONResponse(sb.public(doc))

    @app.post("/api/v2/companies/{companyCode}/transactions/{transactionCode}/commit")
    async def commit_transaction(companyCode: str, transactionCode: str, request: Request  # noqa: N803
                                 ) -> JSONResponse:
        if (denied := sb.check_auth(request)) is not None:
            return denied
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("commit"), bool):
            return _invalid("The commit field is required and must be a boolean.")
        with sb.store.lock:
            doc = sb.store.get("transactions", sb.key(companyCode, transactionCode))
            if doc is None:
                return _not_found(transactionCode)
            if doc["status"] == "Cancelled":
                return avatax_error(400, "CannotModifyDeletedTransaction", "Cannot modify a voided transaction.",
                                    f"Transaction '{transactionCode}' is voided.", 304)
            doc["status"] = "Committed" if body["commit"] else "Saved"
        return JSONResponse(sb.public(doc))

    @app.post("/api/v2/companies/{companyCode}/transactions/{transactionCode}/void")
    async def void_transaction(companyCode: str, transactionCode: str, request: Request  # noqa: N803
                               ) -> JSONResponse:
        if (denied := sb.check_auth(request)) is not None:
            return denied
        body = await _json(request)
        if not isinstance(body, dict) or str(body.get("code")).lower() not in ("docvoided", "docdeleted", "postfailed",
                                                                  "adjustmentcancelled", "unspecified"):
            return _invalid("The code field must be a VoidReasonCode such as DocVoided.")
        with sb.store.lock:
            doc = sb.store.get("transactions", sb.key(companyCode, transactionCode))
            if doc is None:
                return _not_found(transactionCode)
            if doc["status"] == "Cancelled":
                return avatax_error(400, "CannotModifyDeletedTransaction", "Transaction already voided.",
                                    f"Transaction '{transactionCode}' is voided.", 304)
            doc["status"] = "Cancelled"
            doc["version"] += 1
        return JSONResponse(sb.public(doc))

    @app.post("/api/v2/companies/{companyCode}/transactions/{transactionCode}/adjust")
    async def adjust_transaction(companyCode: str, transactionCode: str, request: Request  # noqa: N803
                                 ) -> JSONResponse:
        if (denied := sb.check_auth(request)) is not None:
            return denied
        body = await _json(request)
        if not isinstance(body, dict) or not isinstance(body.get("newTransaction"), dict) \
                or not body.get("adjustmentReason"):
            return _invalid("adjustmentReason and newTransaction are required.")
        with sb.store.lock:
            doc = sb.store.get("transactions", sb.key(companyCode, transactionCode))
            if doc is None:
                return _not_found(transactionCode)
            if doc["status"] == "Cancelled":
                return avatax_error(400, "CannotModifyDeletedTransaction", "Cannot adjust a voided transaction.",
                                    f"Transaction '{transactionCode}' is voided.", 304)
            new = {**body["newTransaction"], "code": transactionCode, "companyCode": companyCode}
            adjusted = sb.calculate(new, doc_id=sb.store.ids.next_int("doc") + 289450368,
                                    version=doc["version"] + 1,
                                    status="Committed" if new.get("commit") else doc["status"],
                                    adjustment=(str(body["adjustmentReason"]),
                                                str(body.get("adjustmentDescription") or "")))
            _store(companyCode, transactionCode, adjusted, new)
        return JSONResponse(sb.public(adjusted))

    return app
