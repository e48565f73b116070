"""RETAILFLOW_ERP_ROUTING_FILE in the composition root (runtime/registry.py): set, the ERP the activities get is the
routing ERP over every ERP of the file; unset, the one ERP of RETAILFLOW_ERP_ADAPTER as before."""

from __future__ import annotations

import pytest

from adapters.erp.local import LocalErp
from adapters.erp.routing import RoutingErp
from adapters.erp.shadow import ShadowErpNext
from runtime.erp_routing import ErpRoutingError
from runtime.registry import build_adapters, build_erp
from runtime.settings import Settings
from tests import dual_run as dr


def test_the_registry_builds_the_routing_erp_from_the_file(tmp_path, engine):
    settings = Settings(_env_file=None, erp_routing_file=dr.write(tmp_path, dr.ROUTING_TOML),
                        erpnext_base_url="http://127.0.0.1:9")
    adapters = build_adapters(settings, engine)
    router = adapters.erp
    assert isinstance(router, RoutingErp) and isinstance(router.erps["legacy"], LocalErp)
    assert isinstance(router.shadows["cloud"], ShadowErpNext) and router.shadows["cloud"].holds is None
    assert router.configured("orders").shadow == "cloud"
    router.close()
    assert isinstance(build_erp(Settings(_env_file=None), engine), LocalErp)  # no file: as before


def test_a_missing_routing_file_stops_the_worker_in_one_line(tmp_path, engine):
    with pytest.raises(ErpRoutingError, match="no such file"):
        build_erp(Settings(_env_file=None, erp_routing_file=tmp_path / "nope.toml"), engine)


def test_production_takes_erpnext_credentials_as_in_use_with_a_routing_file(tmp_path, monkeypatch):
    import os

    for key in [k for k in os.environ if k.startswith("RETAILFLOW_")]:
        monkeypatch.delenv(key)
    base = Settings(_env_file=None, env="production")
    routed = Settings(_env_file=None, env="production", erp_routing_file=dr.write(tmp_path, dr.ROUTING_TOML))
    assert not any("ERPNEXT" in p for p in base.production_problems())
    assert {p for p in routed.production_problems() if "ERPNEXT" in p} == {
        "RETAILFLOW_ERPNEXT_API_KEY is the published development default",
        "RETAILFLOW_ERPNEXT_API_SECRET is the published development default"}
