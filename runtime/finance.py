"""Composition root for finance: the settlement activities with their store, report source and settings.

The report source is chosen here: the embedded folder `<data_dir>/settlements`, and when the Amazon channel runs on
the SP-API adapter (RETAILFLOW_MARKETPLACE_ADAPTERS) Amazon's settlement reports are downloaded from the Reports API
into that folder before each listing (nothing connects until a fetch runs)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from activities.finance import SettlementActivities
from adapters.marketplace.settlement_reports import LocalSettlementReports, SettlementReportSource
from adapters.ports import Adapters
from adapters.settlements.store import SettlementStore
from canonical.settlement_matching import FinanceConfig
from runtime.settings import Settings, get_settings


def finance_config(settings: Settings) -> FinanceConfig:
    return FinanceConfig(account_map=settings.finance_account_map, suspense_account=settings.finance_suspense_account,
                         clearing_account=settings.finance_clearing_account, legal_entity=settings.finance_legal_entity)


def build_settlement_reports(settings: Settings) -> SettlementReportSource:
    reports: SettlementReportSource = LocalSettlementReports(Path(settings.data_dir) / "settlements")
    if settings.marketplace_adapters.get(settings.amazon_channel, "").strip().lower() == "amazon":
        from adapters.marketplace.amazon_sp import AmazonSettlementReports, build_amazon_sp

        reports = AmazonSettlementReports(build_amazon_sp(settings), reports, provider=settings.amazon_channel)
    return reports


def build_finance_activities(adapters: Adapters, settings: Settings | None = None, engine: Engine | None = None,
                             *, reports: SettlementReportSource | None = None) -> SettlementActivities:
    """The settlement store lives on the platform database: `engine`, by default the one the status projection
    writes to (the worker's adapters always carry it)."""
    settings = settings or get_settings()
    if engine is None:
        if adapters.projection is None:
            raise ValueError("finance needs the platform database: pass `engine` or adapters with a projection")
        engine = adapters.projection.engine
    return SettlementActivities(SettlementStore(engine), adapters.erp,
                                reports if reports is not None else build_settlement_reports(settings),
                                finance_config(settings))
