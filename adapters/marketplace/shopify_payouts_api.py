"""Shopify Payments payouts fetched from the Admin REST API into the settlement report folder.

Facts (tests/fixtures/SOURCES.md, `Shopify/shopify-app-js` REST resources and their generated tests for 2026-07;
`https://shopify.dev/docs/api/admin-rest/latest/resources/payouts` and `.../transactions`, api_version 2026-10):
- `GET /admin/api/{version}/shopify_payments/payouts.json` lists payouts, most recent first, filtered by
  `since_id`, `last_id`, `date_min`, `date_max` (inclusive, ISO dates), `date`, `status`; `limit` ≤ 250.
- `GET /admin/api/{version}/shopify_payments/balance/transactions.json?payout_id={id}` lists the balance
  transactions paid out in a payout.
- Both paginate with the `Link` header (`rel="next"` URL carrying `page_info`; that URL is followed as given, the
  filters are not sent again: Shopify refuses them next to `page_info`).
- Payout `status`: `scheduled`, `in_transit` (deprecated), `paid`, `failed`, `canceled`. Only `paid` is money in
  the bank, so only paid payouts are settlements; the others are listed again on the next run.
- Ids are integers (strings in 2025-xx) above 2^53 in live shops, amounts decimal strings: the body is decoded with
  exact integers and `Decimal` for any JSON fraction, never floats.

The REST Admin API is legacy (since 2024-10) but served; this fetcher pins its own API version (`api_version`,
default "2026-10", supported until 2027-10) independently of `shopify_admin_api_version`.

Each paid payout is written once, as `<folder>/<payout id>.json` holding
`{"payout": {...}, "transactions": [...]}` — the exact file adapters/marketplace/shopify_payouts.py reads, so a
file dropped by hand (a backfill) and a fetched one are the same thing. A payout already in the folder is not
fetched again (not even its transactions). Writes go to `.part` then `replace`, so a half-written file is never
listed. The transactions are written as Shopify sent them; the reader checks them (a payout whose transactions
do not add up or belong elsewhere is listed with its error, skipped, and stays for a person to look at).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import structlog
from pydantic import ValidationError

from adapters.http import VendorHttp
from adapters.marketplace.settlement_reports import ReportRef, peek_settlement
from adapters.marketplace.shopify_admin import _ACCESS_HEADER, channel_rejected, next_link
from canonical.finance import SettlementFileInvalid
from canonical.order import CanonicalModel
from canonical.vendor_errors import VendorRejected

log = structlog.get_logger(__name__)

API_VERSION = "2026-10"  # a REST version Shopify still serves in Dec 2026 (each is supported 12 months)
PAID = "paid"
PAYOUT_STATUSES = frozenset({"scheduled", "in_transit", "paid", "failed", "canceled"})
MAX_LIMIT = 250


class ShopifyPayoutMappingError(VendorRejected):
    """A payouts or balance-transactions answer that is not in the documented shape (a person looks: retrying
    the same answer cannot help)."""

    @property
    def type(self) -> str:  # the workflows know the business fault by this name (BUSINESS_ERROR_TYPES)
        return "VendorRejected"


class PayoutRef(CanonicalModel):
    """One row of the payouts list: what decides whether (and where) it is written."""

    payout_id: str
    status: str
    payout_date: date
    currency: str
    amount: Decimal

    @property
    def paid(self) -> bool:
        return self.status == PAID


# -- mapping (pure: tested against the published payloads) ---------------------------------------------------
def decode(content: bytes | str) -> Any:
    """A Shopify JSON body: integers exact (ids exceed 2^53), fractions as Decimal."""
    try:
        return json.loads(content, parse_float=Decimal)
    except ValueError as exc:
        raise ShopifyPayoutMappingError(f"Shopify answered with a body that is not JSON: {exc}") from None


def _id(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip().isdigit():
        raise ShopifyPayoutMappingError(f"{what} must be a numeric id, got {value!r}"[:200])
    return str(value).strip()


def map_payout(raw: Any) -> PayoutRef:
    if not isinstance(raw, Mapping):
        raise ShopifyPayoutMappingError("a payout must be an object")
    pid = _id(raw.get("id"), "payout id")
    status = str(raw.get("status") or "").strip().lower()
    if status not in PAYOUT_STATUSES:
        raise ShopifyPayoutMappingError(f"payout {pid}: unknown status {raw.get('status')!r}")
    try:
        return PayoutRef(payout_id=pid, status=status, payout_date=date.fromisoformat(str(raw.get("date"))[:10]),
                         currency=str(raw.get("currency") or "").upper(), amount=Decimal(str(raw.get("amount"))))
    except (ValueError, ArithmeticError, ValidationError) as exc:
        raise ShopifyPayoutMappingError(f"payout {pid}: {type(exc).__name__}: {str(exc)[:200]}") from None


def payouts_of(body: Any) -> list[dict[str, Any]]:
    rows = body.get("payouts") if isinstance(body, Mapping) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ShopifyPayoutMappingError("the payouts answer has no `payouts` list of objects")
    return rows


def transactions_of(body: Any) -> list[dict[str, Any]]:
    rows = body.get("transactions") if isinstance(body, Mapping) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ShopifyPayoutMappingError("the balance transactions answer has no `transactions` list of objects")
    return rows


def _jsonable(obj: Any) -> Any:
    """For writing: a Decimal (a JSON fraction Shopify sent as a number) keeps its digits, as a string."""
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_jsonable(v) for v in obj]
    return obj


def payout_document(payout: Mapping[str, Any], transactions: Sequence[Mapping[str, Any]]) -> bytes:
    """The report file of one payout: `{"payout": …, "transactions": […]}`, the payout first (the reader needs
    it before the transactions), one transaction a line."""
    head = json.dumps(_jsonable(dict(payout)), ensure_ascii=False)
    lines = ",\n".join("  " + json.dumps(_jsonable(dict(t)), ensure_ascii=False) for t in transactions)
    body = f'{{"payout": {head},\n "transactions": [\n{lines}\n]}}\n' if lines else \
        f'{{"payout": {head},\n "transactions": []}}\n'
    return body.encode()


# -- HTTP -------------------------------------------------------------------------------------------------------
class ShopifyPayoutsApi:
    """Payouts and balance transactions over the Admin REST API (`http` carries the shop URL and the token)."""

    def __init__(self, http: VendorHttp, *, api_version: str = API_VERSION, page_size: int = MAX_LIMIT) -> None:
        self.http = http
        self.prefix = f"/admin/api/{api_version}"
        self.page_size = max(1, min(int(page_size), MAX_LIMIT))

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[Any]:
        """Every page body of a list endpoint, following `Link: <…>; rel="next"` until there is none."""
        url: str | None = f"{self.prefix}/{path}"
        query: dict[str, Any] | None = {**params, "limit": self.page_size}
        seen: set[str] = set()
        while url:
            resp = self.http.request("GET", url, params=query)
            assert resp is not None
            yield decode(resp.content)
            url, query = next_link(resp.headers.get("link")), None  # the next URL carries its own query
            if url is not None:
                if url in seen:
                    raise ShopifyPayoutMappingError(f"{path}: the next page link repeats ({url[:120]})")
                seen.add(url)

    def payouts(self, date_min: date | None = None) -> Iterator[tuple[PayoutRef, dict[str, Any]]]:
        """Every payout dated `date_min` or later (all of them without), each with its raw object."""
        params: dict[str, Any] = {"date_min": date_min.isoformat()} if date_min is not None else {}
        for body in self._pages("shopify_payments/payouts.json", params):
            for raw in payouts_of(body):
                yield map_payout(raw), raw

    def transactions(self, payout_id: str) -> list[dict[str, Any]]:
        """Every balance transaction of one payout, all pages."""
        out: list[dict[str, Any]] = []
        for body in self._pages("shopify_payments/balance/transactions.json", {"payout_id": _id(payout_id, "id")}):
            out.extend(transactions_of(body))
        return out

    def download_payouts(self, folder: Path, date_min: date | None = None) -> list[Path]:
        """Write each paid payout dated `date_min` or later not yet in `folder` as `<payout id>.json`
        (atomically); the new paths. A payout listed twice (pages shifting under a new payout) is written once."""
        folder.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        done: set[str] = set()
        for ref, raw in self.payouts(date_min):
            if not ref.paid or ref.payout_id in done:
                continue
            done.add(ref.payout_id)
            target = folder / f"{ref.payout_id}.json"
            if target.exists():
                continue
            document = payout_document(raw, self.transactions(ref.payout_id))
            tmp = target.with_suffix(".part")
            tmp.write_bytes(document)
            tmp.replace(target)
            written.append(target)
            log.info("shopify.payout_downloaded", payout_id=ref.payout_id, payout_date=ref.payout_date.isoformat())
        return written


def newest_payout_date(folder: Path) -> date | None:
    """The latest payout date among the readable payout files in `folder` (the fetch watermark)."""
    newest: date | None = None
    if not folder.is_dir():
        return None
    for path in folder.glob("*.json"):
        try:
            deposit = peek_settlement("shopify", path).deposit_date
        except (SettlementFileInvalid, OSError, ValueError):
            continue
        if deposit is not None and (newest is None or deposit.date() > newest):
            newest = deposit.date()
    return newest


class ShopifyPayoutReports:
    """A settlement report source (adapters/marketplace/settlement_reports.py) that first downloads the new paid
    payouts of its provider into the embedded folder, then lists and resolves from it.

    `local` is the LocalSettlementReports whose folder receives the files; `inner` (default `local`) is the
    source listing and resolving goes to (another downloading source, e.g. Amazon's, to chain both).
    Watermark: payouts dated from `overlap_days` before the newest payout already in the folder (a payout
    scheduled before a newer one was paid is still picked up), or `first_days` back on the first run."""

    def __init__(self, api: ShopifyPayoutsApi, local: Any, provider: str = "shopify", *, inner: Any = None,
                 overlap_days: int = 30, first_days: int = 90, today: Any = None) -> None:
        self.api, self.local, self.provider = api, local, provider
        self.inner = inner if inner is not None else local
        self.overlap = timedelta(days=overlap_days)
        self.first = timedelta(days=first_days)
        self._today = today or (lambda: datetime.now(UTC).date())

    def folder(self, provider: str) -> Path:
        return self.local.folder(provider)

    def date_min(self, folder: Path) -> date:
        newest = newest_payout_date(folder)
        return newest - self.overlap if newest is not None else self._today() - self.first

    def list_reports(self, provider: str) -> list[ReportRef]:
        if provider == self.provider:
            folder = self.local.folder(provider)
            self.api.download_payouts(folder, self.date_min(folder))
        return self.inner.list_reports(provider)

    def resolve(self, provider: str, source: str) -> Path:
        return self.inner.resolve(provider, source)


def build_shopify_payouts_api(settings: Any, *, transport: httpx.BaseTransport | None = None,
                              api_version: str = API_VERSION, auth: httpx.Auth | None = None) -> ShopifyPayoutsApi:
    """From RETAILFLOW_SHOPIFY_ADMIN_* settings (the token goes into a header once, or per request through `auth`,
    an installed shop's token; never logged); the API version is this fetcher's own, not
    `shopify_admin_api_version`."""
    headers = {"Accept": "application/json"}
    if auth is None:
        headers[_ACCESS_HEADER] = settings.shopify_admin_access_token.get_secret_value()
    http = VendorHttp("shopify", settings.shopify_admin_base_url, transport=transport, error_mapper=channel_rejected,
                      headers=headers, auth=auth)
    return ShopifyPayoutsApi(http, api_version=api_version)


def build_shopify_payouts(settings: Any, transport: httpx.BaseTransport | None = None, *, local: Any = None,
                          inner: Any = None) -> ShopifyPayoutReports:
    """The Shopify payouts report source for `settings.shopify_channel`, downloading into `local` (default the
    embedded `<data_dir>/settlements` folder)."""
    if local is None:
        from adapters.marketplace.settlement_reports import LocalSettlementReports

        local = LocalSettlementReports(Path(settings.data_dir) / "settlements")
    return ShopifyPayoutReports(build_shopify_payouts_api(settings, transport=transport), local,
                                provider=settings.shopify_channel, inner=inner)
