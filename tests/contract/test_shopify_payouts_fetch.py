"""Shopify Payments payouts fetched from the Admin REST API (adapters/marketplace/shopify_payouts_api.py): the
published payouts and balance-transactions answers (tests/fixtures/shopify/rest_*_shopify_api_js_2026-07.json,
unchanged) through the fetcher's mapping and the payout reader; then the fetcher against the sandbox seeded with
payouts built from those published records: every page of payouts and of transactions (nothing missed or
doubled), only paid payouts written, once, in the report-file format the reader and backfills use; 401/429."""

from __future__ import annotations

import copy
import io
import json
import os
from datetime import date
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from adapters.http import VendorHttp
from adapters.marketplace import shopify_payouts
from adapters.marketplace import shopify_payouts_api as spa
from adapters.marketplace.settlement_reports import LocalSettlementReports
from canonical.finance import SettlementFileInvalid
from canonical.vendor_errors import VendorAuthFailed, VendorRateLimited, VendorUnavailable
from sandbox.faults import FaultInjector
from sandbox.shopify import create_app
from tests.conftest import fixture_bytes
from tests.contract.serve_sandbox import serve

PAYOUTS = json.loads(fixture_bytes("shopify", "rest_payouts_list_shopify_api_js_2026-07.json"))
PAYOUT = json.loads(fixture_bytes("shopify", "rest_payout_get_shopify_api_js_2026-07.json"))
TRANSACTIONS = json.loads(fixture_bytes("shopify", "rest_balance_transactions_shopify_api_js_2026-07.json"))
TOKEN = "shpat_payouts_test"
TXN_PATH = "GET /admin/api/{version}/shopify_payments/balance/transactions.json"
PAYOUTS_PATH = "GET /admin/api/{version}/shopify_payments/payouts.json"


# -- the published payloads through the mapping -------------------------------------------------------------------
def test_published_payouts_list_maps_and_only_paid_ones_are_settlements():
    refs = [spa.map_payout(p) for p in spa.payouts_of(PAYOUTS)]
    assert [r.payout_id for r in refs] == [str(p["id"]) for p in PAYOUTS["payouts"]]
    assert {r.status for r in refs} == {"failed", "in_transit", "scheduled", "paid"}
    assert [r.payout_id for r in refs if r.paid] == ["867808544", "725076685", "623721858"]
    first = refs[0]
    assert (first.payout_date, first.currency, first.amount) == (date(2013, 12, 1), "USD", Decimal("43.12"))


def test_published_payout_and_transactions_become_a_report_file_the_reader_reads():
    txs = spa.transactions_of(TRANSACTIONS)
    doc = spa.payout_document(PAYOUT["payout"], txs)
    written = json.loads(doc)
    assert written["payout"] == PAYOUT["payout"] and written["transactions"] == txs  # nothing changed on the way
    assert list(written) == ["payout", "transactions"]  # the payout first: the reader streams
    reader = shopify_payouts.read_payout(io.BytesIO(doc))
    s = reader.settlement
    assert (s.settlement_id, s.total, s.currency, s.deposit_date.date()) == \
        ("623721858", Decimal("41.90"), "USD", date(2012, 11, 12))
    # Shopify's docs example has an adjustment whose net is not amount - fee: the reader refuses the file there
    with pytest.raises(SettlementFileInvalid, match="758509248"):
        list(reader)


def test_published_transactions_lines_without_the_inconsistent_one():
    txs = [t for t in spa.transactions_of(TRANSACTIONS) if t["id"] != 758509248]
    lines = list(shopify_payouts.read_payout(io.BytesIO(spa.payout_document(PAYOUT["payout"], txs))))
    assert sum(line.amount for line in lines) == sum(Decimal(t["net"]) for t in txs if t["type"] != "payout")
    assert {line.source_ref for line in lines} == {str(t["id"]) for t in txs}
    # ... and the docs example does not add up to its payout: the totals check would park it
    assert sum(line.amount for line in lines) != Decimal(PAYOUT["payout"]["amount"])


def test_documented_shape_is_enforced():
    with pytest.raises(spa.ShopifyPayoutMappingError):
        spa.map_payout({**PAYOUT["payout"], "status": "sent"})
    with pytest.raises(spa.ShopifyPayoutMappingError):
        spa.map_payout({**PAYOUT["payout"], "id": 1.5})
    with pytest.raises(spa.ShopifyPayoutMappingError):
        spa.payouts_of({"payout": PAYOUT["payout"]})
    with pytest.raises(spa.ShopifyPayoutMappingError):
        spa.transactions_of({"transactions": [1]})
    assert spa.ShopifyPayoutMappingError("x").type == "VendorRejected"


# -- the sandbox, seeded from the published records ---------------------------------------------------------------
def _template(ttype: str) -> dict:
    return copy.deepcopy(next(t for t in TRANSACTIONS["transactions"] if t["type"] == ttype))


BASE_ID = 5_000_000_000_000_100  # above 2^53, like live Shopify ids


def build_payout(n: int, status: str, day: str) -> dict:
    """A payout in the published shape whose balance transactions (published records, re-amounted) add up."""
    pid = BASE_ID + n * 100
    payout = {**copy.deepcopy(PAYOUT["payout"]), "id": pid, "status": status, "date": day}
    parts = [("refund", Decimal("-3.45"), Decimal("0.00")), ("adjustment", Decimal("0.45"), Decimal("0.00")),
             ("dispute", Decimal("-11.50"), Decimal("15.00")), ("credit", Decimal("1.50"), Decimal("0.00"))]
    charge_amount, charge_fee = Decimal("100.00") + n, Decimal("2.91")
    parts.insert(0, ("charge", charge_amount, charge_fee))
    total = sum((a - f for _, a, f in parts), Decimal(0))
    payout["amount"] = str(total)
    txs = []
    for k, (ttype, amount, fee) in enumerate(parts, start=1):
        t = _template(ttype)
        t.update(id=pid + k, payout_id=pid, payout_status=status, amount=str(amount), fee=str(fee),
                 net=str(amount - fee), processed_at=f"{day}T10:00:00-04:00")
        txs.append(t)
    txs.append({**_template("charge"), "id": pid + 99, "type": "payout", "payout_id": pid, "payout_status": status,
                "amount": str(-total), "fee": "0.00", "net": str(-total), "source_id": pid, "source_type": "payout",
                "source_order_id": None, "source_order_transaction_id": None})
    return {"payout": payout, "transactions": txs}


SEEDED = [build_payout(1, "paid", "2026-11-02"), build_payout(2, "paid", "2026-11-05"),
          build_payout(3, "scheduled", "2026-11-30"), build_payout(4, "paid", "2026-11-10"),
          build_payout(5, "failed", "2026-11-12"), build_payout(6, "paid", "2026-11-16"),
          build_payout(7, "in_transit", "2026-11-20"), build_payout(8, "paid", "2026-11-24"),
          build_payout(9, "paid", "2026-09-01")]  # before the watermark below
PAID_IN_WINDOW = {str(p["payout"]["id"]) for p in SEEDED
                  if p["payout"]["status"] == "paid" and p["payout"]["date"] >= "2026-10-01"}


@pytest.fixture(scope="module")
def sandbox():
    injector = FaultInjector()
    app = create_app(access_token=TOKEN, webhook_url="", webhook_secret="unused", injector=injector)
    with serve(app) as url:
        yield app, url, injector


def seed(url: str, *payouts: dict) -> None:
    for p in payouts:
        assert httpx.post(f"{url}/_admin/payouts", content=json.dumps(p)).status_code == 201


@pytest.fixture
def api(sandbox):
    app, url, injector = sandbox
    injector.reset()
    seed(url, *SEEDED)
    calls: list[str] = []
    transport = httpx.HTTPTransport()

    class Recording(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            calls.append(str(request.url))
            return transport.handle_request(request)

    http = VendorHttp("shopify", url, headers={"X-Shopify-Access-Token": TOKEN}, transport=Recording(),
                      error_mapper=spa.channel_rejected, timeout=5.0)
    fetcher = spa.ShopifyPayoutsApi(http, page_size=2)
    fetcher.calls = calls
    return fetcher


def test_every_page_of_payouts_and_transactions(api):
    listed = [ref.payout_id for ref, _ in api.payouts(date(2026, 10, 1))]
    assert len(listed) == len(set(listed)) == 8  # every payout in the window, none twice
    payout_pages = [c for c in api.calls if "payouts.json" in c]
    assert len(payout_pages) == 4 and all("page_info=" in c for c in payout_pages[1:])
    pid = str(SEEDED[0]["payout"]["id"])
    txs = api.transactions(pid)
    assert [t["id"] for t in txs] == [t["id"] for t in SEEDED[0]["transactions"]]  # 6 records over 3 pages
    assert len([c for c in api.calls if "transactions.json" in c]) == 3


def test_paid_payouts_written_once_and_read_back(api, tmp_path):
    written = api.download_payouts(tmp_path, date(2026, 10, 1))
    assert {p.stem for p in written} == PAID_IN_WINDOW  # not scheduled/failed/in_transit, not before date_min
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{i}.json" for i in PAID_IN_WINDOW)  # no .part
    by_id = {str(p["payout"]["id"]): p for p in SEEDED}
    for path in written:
        seeded = by_id[path.stem]
        with open(path, "rb") as f:
            reader = shopify_payouts.read_payout(f)
            lines = list(reader)
        assert reader.settlement.settlement_id == path.stem
        assert reader.settlement.total == Decimal(seeded["payout"]["amount"])
        assert sum(line.amount for line in lines) == reader.settlement.total  # the lines add up to the deposit
        assert {line.source_ref for line in lines} == {str(t["id"]) for t in seeded["transactions"]
                                                       if t["type"] != "payout"}
        assert json.loads(path.read_bytes())["transactions"] == seeded["transactions"]  # exact ids (> 2^53)


def test_a_rerun_writes_nothing_and_fetches_no_transactions(api, sandbox, tmp_path):
    first = api.download_payouts(tmp_path, date(2026, 10, 1))
    stamps = {p.name: p.stat().st_mtime_ns for p in first}
    sandbox[2].set(TXN_PATH, {"error_rate": 1.0})  # fetching a written payout's transactions again would fail
    assert api.download_payouts(tmp_path, date(2026, 10, 1)) == []
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == stamps


def test_a_payout_is_written_once_it_is_paid(api, sandbox, tmp_path):
    api.download_payouts(tmp_path, date(2026, 10, 1))
    scheduled = SEEDED[2]
    assert not (tmp_path / f"{scheduled['payout']['id']}.json").exists()
    paid = build_payout(3, "paid", "2026-11-30")
    seed(sandbox[1], paid)
    assert [p.name for p in api.download_payouts(tmp_path, date(2026, 10, 1))] == [f"{paid['payout']['id']}.json"]


def test_a_failed_transfer_leaves_no_file(api, sandbox, tmp_path):
    sandbox[2].set(TXN_PATH, {"error_rate": 1.0})
    with pytest.raises(VendorUnavailable):
        api.download_payouts(tmp_path, date(2026, 10, 1))
    assert list(tmp_path.iterdir()) == []


def test_429_and_401_map_to_the_vendor_errors(api, sandbox, tmp_path):
    sandbox[2].set(PAYOUTS_PATH, {"rate_limit_every": 1, "retry_after_seconds": 7})
    with pytest.raises(VendorRateLimited) as info:
        api.download_payouts(tmp_path)
    assert info.value.next_retry_delay.total_seconds() == 7
    sandbox[2].clear()
    bad = spa.ShopifyPayoutsApi(VendorHttp("shopify", sandbox[1], headers={"X-Shopify-Access-Token": "wrong"}))
    with pytest.raises(VendorAuthFailed):
        bad.download_payouts(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_sandbox_refuses_filters_next_to_page_info(sandbox):
    url = sandbox[1]
    seed(url, *SEEDED)
    first = httpx.get(f"{url}/admin/api/2026-10/shopify_payments/payouts.json", params={"limit": 2},
                      headers={"X-Shopify-Access-Token": TOKEN})
    nxt = spa.next_link(first.headers.get("link"))
    assert nxt and "page_info=" in nxt
    again = httpx.get(nxt + "&date_min=2026-01-01", headers={"X-Shopify-Access-Token": TOKEN})
    assert again.status_code == 400


# -- the report source and its wiring -----------------------------------------------------------------------------
def _settings(url: str, data_dir: Path):
    return type("S", (), dict(shopify_admin_base_url=url, shopify_admin_access_token=SecretStr(TOKEN),
                              shopify_channel="shopify", data_dir=data_dir))()


def test_report_source_downloads_then_lists_and_resolves(sandbox, tmp_path):
    sandbox[2].reset()  # faults off, store emptied
    seed(sandbox[1], *SEEDED)
    source = spa.build_shopify_payouts(_settings(sandbox[1], tmp_path))
    source.api.page_size = 3
    source._today = lambda: date(2026, 12, 2)  # first run: 90 days back → 2026-09-03, payout 9 is older
    refs = source.list_reports("shopify")
    assert {r.settlement_id for r in refs} == PAID_IN_WINDOW and not any(r.error for r in refs)
    assert all(Decimal(r.total) == Decimal({str(p["payout"]["id"]): p for p in SEEDED}[r.settlement_id]["payout"]
                                           ["amount"]) for r in refs)
    path = source.resolve("shopify", refs[0].report_id)
    assert path.parent == tmp_path / "settlements" / "shopify"
    # the watermark comes from the newest payout on file, with an overlap
    assert source.date_min(path.parent) == date(2026, 11, 24) - spa.timedelta(days=30)
    # another provider is not downloaded for
    assert source.list_reports("amazon") == []


def test_a_backfill_file_is_listed_beside_fetched_ones(sandbox, tmp_path):
    sandbox[2].reset()
    seed(sandbox[1], *SEEDED)
    folder = tmp_path / "settlements" / "shopify"
    folder.mkdir(parents=True)
    backfill = build_payout(42, "paid", "2025-01-15")
    (folder / "backfill-2025-01.json").write_bytes(spa.payout_document(backfill["payout"],
                                                                        backfill["transactions"]))
    source = spa.build_shopify_payouts(_settings(sandbox[1], tmp_path))
    source.overlap = spa.timedelta(days=400)
    refs = {r.settlement_id: r for r in source.list_reports("shopify")}
    assert str(backfill["payout"]["id"]) in refs and PAID_IN_WINDOW <= set(refs)


def test_build_settlement_reports_selects_shopify_and_chains_with_amazon(tmp_path, monkeypatch):
    from adapters.marketplace.amazon_sp import AmazonSettlementReports
    from runtime.finance import build_settlement_reports
    from runtime.settings import Settings

    assert isinstance(build_settlement_reports(Settings(data_dir=tmp_path)), LocalSettlementReports)
    shop = build_settlement_reports(Settings(data_dir=tmp_path, marketplace_adapters={"shopify": "shopify"}))
    assert isinstance(shop, spa.ShopifyPayoutReports) and isinstance(shop.inner, LocalSettlementReports)
    from adapters.marketplace.shopify_payouts_graphql import ShopifyPayoutsGraphQL

    assert isinstance(shop.api, ShopifyPayoutsGraphQL)  # GraphQL Admin (the default Admin API)
    rest = build_settlement_reports(Settings(data_dir=tmp_path, marketplace_adapters={"shopify": "shopify"},
                                             shopify_admin_api="rest"))
    assert rest.api.prefix == "/admin/api/2026-10"  # this fetcher's own version, not shopify_admin_api_version
    both = build_settlement_reports(Settings(data_dir=tmp_path, marketplace_adapters={"shopify": "shopify",
                                                                                      "amazon": "amazon"}))
    assert isinstance(both, spa.ShopifyPayoutReports) and isinstance(both.inner, AmazonSettlementReports)
    assert both.local.root == both.inner.local.root == Path(tmp_path) / "settlements"
    assert os.fspath(both.folder("shopify")).endswith("settlements/shopify")


# -- the same payouts over the GraphQL Admin API (adapters/marketplace/shopify_payouts_graphql.py) ------------------
def _lines(path: Path) -> tuple:
    reader = shopify_payouts.read_payout(io.BytesIO(path.read_bytes()))
    return reader.settlement, [ln.model_dump(exclude={"posted_at"}) for ln in reader], \
        [ln.posted_at for ln in shopify_payouts.read_payout(io.BytesIO(path.read_bytes()))]


def test_graphql_fetcher_writes_the_payouts_the_rest_one_writes_and_they_read_the_same(sandbox, api, tmp_path):
    from adapters.marketplace.shopify_graphql import ShopifyGraphQL
    from adapters.marketplace.shopify_payouts_graphql import ShopifyPayoutsGraphQL

    _, url, _ = sandbox
    rest_dir, gql_dir = tmp_path / "rest", tmp_path / "graphql"
    rest = sorted(p.name for p in api.download_payouts(rest_dir, date(2026, 10, 1)))
    http = VendorHttp("shopify", url, headers={"X-Shopify-Access-Token": TOKEN}, timeout=5.0)
    fetcher = ShopifyPayoutsGraphQL(ShopifyGraphQL(http, shop="sandbox"), payout_page_size=2,
                                    transaction_page_size=2)  # several pages of each
    gql = sorted(p.name for p in fetcher.download_payouts(gql_dir, date(2026, 10, 1)))
    assert gql == rest and {n.removesuffix(".json") for n in gql} == PAID_IN_WINDOW
    for name in gql:
        (s_rest, lines_rest, at_rest), (s_gql, lines_gql, at_gql) = _lines(rest_dir / name), _lines(gql_dir / name)
        assert s_gql == s_rest and lines_gql == lines_rest and lines_gql  # same settlement, same lines, exactly
        assert at_gql == at_rest  # the same instants (GraphQL answers in UTC)
    assert fetcher.download_payouts(gql_dir, date(2026, 10, 1)) == []  # each payout once
