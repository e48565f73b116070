"""Issue 16: a settlement posts to the ledger of the legal entity that owns its store, in that entity's currency.
A settlement in another currency books both amounts at the configured rate of its posting date; what the rounding
of the lines leaves over goes to the entity's FX account — never a journal that mixes currencies."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from canonical.finance import ReconciliationOpen
from canonical.settlement_matching import AmountGroup, FinanceConfig, SettlementHeader, plan_journal
from canonical.stores import LegalEntity
from runtime.settings import DEFAULT_FINANCE_ACCOUNT_MAP

ENTITIES = {"retail-de": LegalEntity(name="retail-de", currency="EUR"),
            "retail-uk": LegalEntity(name="retail-uk", currency="GBP", fx_account="7920")}


def _config(**rates: dict[date, Decimal]) -> FinanceConfig:
    return FinanceConfig(account_map=DEFAULT_FINANCE_ACCOUNT_MAP, legal_entity="retail-de",
                         channel_entities={"shopify-de": "retail-de", "shopify-uk": "retail-uk",
                                           "amazon-uk": "retail-uk"},
                         entities=ENTITIES, fx_rates={k.replace("_", "/"): v for k, v in rates.items()})


def _eur_settlement(channel_key: str = "amazon-uk:1") -> tuple[SettlementHeader, list[AmountGroup]]:
    # 3 orders' principal 33.33 each (99.99), 3 × 1.11 commission (3.33), a reserve of 10.01: deposit 86.65
    groups = [AmountGroup("Order", "ItemPrice", "Principal", 3, 99_99, buyer=True),
              AmountGroup("Order", "ItemFees", "Commission", 3, -3_33),
              AmountGroup("other-transaction", "other-transaction", "Current Reserve Amount", 1, -10_01)]
    head = SettlementHeader(key=channel_key, provider="amazon-uk", settlement_id="1", currency="EUR",
                            deposit_minor=99_99 - 3_33 - 10_01,
                            posting_time=datetime(2026, 11, 30, 12, tzinfo=UTC))
    return head, groups


def test_same_currency_books_to_the_stores_entity():
    head, groups = _eur_settlement("shopify-de:1")
    plan = plan_journal(head, groups, channel="shopify-de", strict=True, config=_config())
    j = plan.journal
    assert j.currency == "EUR" and j.exchange_rate is None
    assert {x.dimensions.legal_entity for x in j.lines} == {"retail-de"}
    assert {x.dimensions.store for x in j.lines} == {"shopify-de"}
    assert all(x.transaction_amount is None for x in j.lines)


def test_foreign_currency_books_both_amounts_and_the_rounding_to_fx():
    head, groups = _eur_settlement()
    rate = Decimal("0.8617")
    plan = plan_journal(head, groups, channel="amazon-uk", strict=True,
                        config=_config(EUR_GBP={date(2026, 11, 1): Decimal("0.85"), date(2026, 11, 30): rate,
                                                date(2026, 12, 1): Decimal("0.90")}))
    j = plan.journal
    assert j.currency == "GBP" and j.exchange_rate == rate  # the rate effective on the posting date (30 Nov)
    assert {x.dimensions.currency for x in j.lines} == {"GBP"}
    assert {x.dimensions.legal_entity for x in j.lines} == {"retail-uk"}
    by = {x.account: x for x in j.lines}
    # every line keeps its EUR amount, and its GBP amount is that at the rate, half-even to the penny
    assert by["1010"].transaction_amount == Decimal("86.65") and by["1010"].debit == Decimal("74.67")
    assert by["1150"].transaction_amount == Decimal("-99.99") and by["1150"].credit == Decimal("86.16")
    assert by["6100"].transaction_amount == Decimal("3.33") and by["6100"].debit == Decimal("2.87")
    assert by["1160"].transaction_amount == Decimal("10.01") and by["1160"].debit == Decimal("8.63")
    # 74.67 + 2.87 + 8.63 = 86.17 against 86.16: the penny the rounding left goes to the entity's FX account
    assert by["7920"].credit == Decimal("0.01") and by["7920"].transaction_amount == 0
    assert j.total_debit == j.total_credit
    assert sum((x.transaction_amount or Decimal(0)) for x in j.lines) == 0  # balanced in EUR too


def test_the_inverse_pair_serves_when_only_it_is_configured():
    head, groups = _eur_settlement()
    plan = plan_journal(head, groups, channel="amazon-uk", strict=True,
                        config=_config(GBP_EUR={date(2026, 1, 1): Decimal("1.25")}))
    assert plan.journal.exchange_rate == Decimal("0.8000000000")
    assert {x.account: x.debit for x in plan.journal.lines}["1010"] == Decimal("69.32")


def test_no_rate_parks_naming_the_pair():
    head, groups = _eur_settlement()
    with pytest.raises(ReconciliationOpen, match="EUR/GBP exchange rate") as exc:
        plan_journal(head, groups, channel="amazon-uk", strict=False,
                     config=_config(EUR_GBP={date(2026, 12, 1): Decimal("0.9")}))  # only after the posting date
    assert exc.value.details["legal_entity"] == "retail-uk"


def test_a_channel_without_a_store_books_to_the_default_entity():
    head, groups = _eur_settlement("amazon:1")
    plan = plan_journal(head, groups, channel="amazon", strict=True, config=_config())
    assert {x.dimensions.legal_entity for x in plan.journal.lines} == {"retail-de"}
    assert plan.journal.currency == "EUR"


# --- composition: the settings' stores decide the entity ---------------------------------------------------------
STORES = [{"channel": "shopify-uk", "vendor": "shopify", "shop_domain": "uk.myshopify.com", "legal_entity": "retail-uk",
           "currency": "GBP", "webhook_secret": "s-uk"},
          {"channel": "square-ams", "vendor": "square", "square_location_id": "AMS01", "legal_entity": "retail-de",
           "currency": "EUR"}]


def _settings(**extra):
    from runtime.settings import Settings

    values = {"stores": STORES, "legal_entities": {k: v.model_dump() for k, v in ENTITIES.items()},
              "finance_legal_entity": "retail-de", "finance_fx_rates": {"eur/gbp": "0.86"}, **extra}
    return Settings(**values)


def test_finance_config_from_stores_books_each_channel_to_its_entity():
    from runtime.finance import finance_config

    cfg = finance_config(_settings())
    assert cfg.entity_for("shopify-uk") == "retail-uk" and cfg.entity_for("amazon") == "retail-de"
    assert cfg.entities["retail-uk"].currency == "GBP"
    assert cfg.rate("EUR", "GBP", date(2026, 11, 30)) == Decimal("0.86")  # a plain rate: effective always


def test_without_stores_everything_books_as_before():
    from runtime.finance import finance_config
    from runtime.settings import Settings

    cfg = finance_config(Settings())
    assert cfg.channel_entities == {} and cfg.entities == {}  # no conversion: each settlement in its own currency
    head, groups = _eur_settlement("amazon:1")
    assert plan_journal(head, groups, channel="amazon", strict=True, config=cfg).journal.currency == "EUR"


def test_a_pos_store_day_posts_to_the_entity_of_its_square_store():
    from runtime.settings import Settings
    from starters.pos import store_day_input, store_legal_entity

    settings = _settings()
    assert store_legal_entity(settings, "AMS01") == "retail-de"
    uk = _settings(stores=[*STORES, {"channel": "square-lon", "vendor": "square", "square_location_id": "LON01",
                                     "legal_entity": "retail-uk", "currency": "GBP"}])
    assert store_day_input(uk, "LON01", date(2026, 11, 30)).legal_entity == "retail-uk"
    assert store_legal_entity(Settings(finance_legal_entity="main"), "LON01") == "main"
