"""The price API's refusals, before anything starts (no Temporal needed): overlapping effective windows for one
item and channel — within the set or against a change set the price book has accepted — are a 409 naming the other
window; a negative price, an end before the start and a currency that is not the channel's are 422 with the line;
a requester's body cannot name another requester; `GET /prices/{sku}` answers what each channel shows and why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from adapters.pricing.book import PriceBook
from api.app import create_app
from canonical.pricing import PriceChange, PriceChangeSet, PublishedLine
from runtime.settings import Settings
from tests.auth import headers, make_key

T0 = datetime(2027, 3, 1, tzinfo=UTC)


def line(**kw) -> dict:
    base = {"item_code": "MUG", "channel": "shopify", "currency": "USD", "amount": "15.00", "compare_at": "20.00",
            "effective_from": T0.isoformat(), "effective_to": (T0 + timedelta(days=7)).isoformat(),
            "kind": "promotion"}
    return {**base, **kw}


@pytest.fixture
def http(engine) -> TestClient:
    return TestClient(create_app(Settings(_env_file=None), engine=engine), raise_server_exceptions=False)


@pytest.fixture
def analyst(engine) -> dict[str, str]:
    return headers(make_key(engine, "analyst"))


def accepted(engine, cs_id: str = "SPRING-1") -> PriceChangeSet:
    cs = PriceChangeSet(change_set_id=cs_id, reason="spring", requested_by="key:merch",
                        lines=[PriceChange.model_validate(line())])
    PriceBook(engine).record_change_set(cs, "pending")
    return cs


def test_a_window_overlapping_an_accepted_change_set_is_refused_with_409(http, engine, analyst):
    accepted(engine)
    body = {"change_set_id": "SPRING-2", "reason": "deeper", "lines": [
        line(amount="12.00", effective_from=(T0 + timedelta(days=3)).isoformat(),
             effective_to=(T0 + timedelta(days=10)).isoformat())]}
    resp = http.post("/prices/changes", json=body, headers=analyst)
    assert resp.status_code == 409, resp.text
    detail = resp.json()["detail"]
    assert "overlapping effective windows" in detail["message"]
    assert "MUG on shopify" in detail["problems"][0] and "'SPRING-1'" in detail["problems"][0]
    # another channel, or a window after the accepted one ends, does not overlap (refused later only by Temporal)
    other = PriceBook(engine).windows(["MUG"], ["shopify"]).conflicts(PriceChangeSet(
        change_set_id="SPRING-3", reason="after", requested_by="key:x", lines=[PriceChange.model_validate(
            line(effective_from=(T0 + timedelta(days=7)).isoformat(),
                 effective_to=(T0 + timedelta(days=9)).isoformat()))]))
    assert other == []


def test_overlapping_windows_within_one_change_set_are_refused_with_409(http, analyst):
    body = {"change_set_id": "TWO", "reason": "twice", "lines": [
        line(), line(amount="14.00", effective_from=(T0 + timedelta(days=6)).isoformat(),
                     effective_to=(T0 + timedelta(days=8)).isoformat())]}
    resp = http.post("/prices/changes", json=body, headers=analyst)
    assert resp.status_code == 409, resp.text
    assert "within the change set" in resp.json()["detail"]["message"]


@pytest.mark.parametrize(("bad", "words"), [
    ({"amount": "-1.00", "kind": "price", "compare_at": None}, "cannot be negative"),
    ({"effective_to": (T0 - timedelta(days=1)).isoformat()}, "effective_to must be after effective_from"),
    ({"currency": "EUR"}, "shopify sells in USD"),
    ({"channel": "nowhere"}, "no price currency configured"),
    ({"effective_to": None}, "a promotion needs an end"),
    ({"amount": "1.5", "currency": "XYZ"}, "unknown currency"),
])
def test_a_line_that_breaks_a_rule_is_refused_with_422(http, analyst, bad, words):
    resp = http.post("/prices/changes", json={"change_set_id": "BAD", "reason": "x", "lines": [line(**bad)]},
                     headers=analyst)
    assert resp.status_code == 422, resp.text
    assert words in str(resp.json()["detail"])


def test_the_body_cannot_name_the_requester_and_a_viewer_cannot_request(http, engine, analyst):
    body = {"change_set_id": "X", "reason": "x", "lines": [line()], "requested_by": "someone-else"}
    assert http.post("/prices/changes", json=body, headers=analyst).status_code == 422
    body.pop("requested_by")
    viewer = headers(make_key(engine, "viewer"))
    assert http.post("/prices/changes", json=body, headers=viewer).status_code == 403
    approve = http.post("/prices/changes/X/approve", json={}, headers=analyst)  # analysts request, finance approves
    assert approve.status_code == 403 and "finance" in approve.json()["detail"]


def test_get_prices_shows_what_each_channel_shows_and_why(http, engine):
    cs = accepted(engine)
    book = PriceBook(engine)
    book.set_status(cs.change_set_id, "live", approved_by="key:ann")
    at = T0 + timedelta(minutes=1)
    book.record_shown(PublishedLine(line=0, item_code="MUG", channel="shopify", channel_skus=["SH-MUG-1"],
                                    amount=Decimal("15.00"), currency="USD", compare_at=Decimal("20.00"),
                                    previous=Decimal("20.00"), at=at),
                      change_set_id=cs.change_set_id, reason="spring (publish)", approved_by="key:ann", verified_at=at)
    resp = http.get("/prices/MUG", headers=headers(make_key(engine, "viewer")))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [(c["channel"], c["channel_sku"], c["amount"], c["approved_by"]) for c in body["channels"]] == [
        ("shopify", "SH-MUG-1", "15.00", "key:ann")]
    assert "SPRING-1" in body["channels"][0]["why"] and "spring" in body["channels"][0]["why"]
    assert [(c["change_set_id"], c["status"], c["requested_by"]) for c in body["changes"]] == [
        ("SPRING-1", "live", "key:merch")]
    # the channel's own SKU finds it too
    assert http.get("/prices/SH-MUG-1", headers=headers(make_key(engine, "viewer"))).json()["channels"]
