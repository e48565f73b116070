"""What analysts and finance read of a dual-run (docs/erp-migration.md): the Markdown report of `retailflow erp
parity-report`, from the verdicts ParityCheck recorded (`_verdicts` is shared with test_erp_parity_api.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from adapters.erp.route_store import ErpRouteStore
from canonical.erp_routing import ErpRoute
from retailflow.erp_cli import parity_markdown

DOC = {"erp": "legacy", "document_id": "SO-1", "tax_total": "11.59"}


def _verdicts(store: ErpRouteStore) -> list[str]:
    keys = [f"order:shopify:{n}" for n in range(3)]
    for key in keys:
        store.pin("orders", key, ErpRoute(record="legacy", shadow="cloud"), scope="test")
    store.pin("orders", "order:shopify:unchecked", ErpRoute(record="legacy", shadow="cloud"), scope="test")
    store.record_parity("orders", keys[0], status="equal", differences=[], record_document=DOC,
                        shadow_document={**DOC, "erp": "cloud"}, shadow_failures=[], run_id="r1")
    store.record_parity("orders", keys[1], status="different",
                        differences=[{"field": "tax_total", "record": "11.59", "shadow": "12.59"}],
                        record_document=DOC, shadow_document={**DOC, "erp": "cloud", "document_id": "SAL-ORD-1"},
                        shadow_failures=[], run_id="r1")
    store.record_parity("orders", keys[2], status="different",
                        differences=[{"field": "document", "record": "SO-3", "shadow": None}], record_document=DOC,
                        shadow_document=None, shadow_failures=[{"failure": "create_sales_order: UnknownSku | x"}],
                        run_id="r1")
    assert store.accept("orders", [keys[2]], "accepted by fin@example.com: known gap") == 1
    return keys


def test_the_markdown_report_counts_by_day_and_shows_each_difference_side_by_side(engine):
    store = ErpRouteStore(engine)
    keys = _verdicts(store)
    today = datetime.now(UTC).date().isoformat()
    text = parity_markdown("orders", store.parity_by_day("orders"), store.parity("orders"),
                           unchecked=store.unchecked("orders"))
    assert "3 business key(s) compared: 1 equal, 1 different, 1 accepted; 1 posted but not compared yet." in text
    assert f"| {today} | 3 | 1 | 1 | 1 |" in text
    assert f"### {keys[1]} ({today}, different)" in text and "| tax_total | 11.59 | 12.59 |" in text
    assert "shadow cloud `SAL-ORD-1`" in text and f"### {keys[0]}" not in text
    assert "accepted: accepted by fin@example.com: known gap" in text
    assert "| shadow failure | | create_sales_order: UnknownSku \\| x |" in text  # a pipe never breaks the table
    assert "No dual-run documents were compared on 2000-01-01." in parity_markdown(
        "orders", store.parity_by_day("orders"), [], day="2000-01-01")


def test_the_cli_writes_the_report(engine, tmp_path, monkeypatch):
    import typer

    from retailflow.erp_cli import erp_app

    app = typer.Typer()  # as retailflow/cli.py mounts it: `retailflow erp parity-report`
    app.add_typer(erp_app, name="erp")
    if engine.dialect.name != "sqlite":
        pytest.skip("the CLI reads RETAILFLOW_DATABASE_URL; the PostgreSQL fixture is a schema of its own")
    _verdicts(ErpRouteStore(engine))
    monkeypatch.setenv("RETAILFLOW_DATABASE_URL", str(engine.url.render_as_string(hide_password=False)))
    from runtime.settings import get_settings

    get_settings.cache_clear()
    try:
        out = tmp_path / "parity.md"
        result = CliRunner().invoke(app, ["erp", "parity-report", "--process", "orders", "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert out.read_text().startswith("# Dual-run parity: orders")
        bad = CliRunner().invoke(app, ["erp", "parity-report", "--process", "payroll"])
        assert bad.exit_code == 2
    finally:
        get_settings.cache_clear()
