"""sandbox/faults.py: per-endpoint configs, determinism, admin endpoints, webhook duplicates and reordering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sandbox.faults import FaultConfig, FaultInjector, WebhookDelivery, deliver_webhooks, install_faults


def app_with(injector: FaultInjector, resets: list) -> TestClient:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    def thing(thing_id: str) -> dict:
        return {"id": thing_id}

    install_faults(app, injector, reset_hooks=[lambda: resets.append(1)])
    return TestClient(app)


def test_admin_endpoints_configure_per_endpoint_faults_and_reset() -> None:
    resets: list = []
    client = app_with(FaultInjector(seed=3), resets)
    put = client.put("/_admin/faults", json={"faults": {"GET /things/{thing_id}": {"rate_limit_every": 2,
                                                                                  "retry_after_seconds": 2.5}}})
    assert put.status_code == 200 and put.json()["seed"] == 3
    answers = [client.get(f"/things/{i}") for i in range(4)]
    assert [r.status_code for r in answers] == [200, 429, 200, 429]
    assert answers[1].headers["Retry-After"] == "3"  # whole seconds, rounded up
    assert client.put("/_admin/faults", json={"faults": {"nonsense": {}}}).status_code == 422
    assert client.put("/_admin/faults", json={"faults": {"*": {"error_rate": 2}}}).status_code == 422
    assert client.post("/_admin/reset").json() == {"status": "reset"} and resets == [1]
    assert client.get("/_admin/faults").json()["faults"] == {} and client.get("/things/x").status_code == 200


def test_draws_are_deterministic_by_seed_and_outage_wins() -> None:
    def run(seed: int) -> list:
        inj = FaultInjector({"*": FaultConfig(error_rate=0.5, timeout_rate=0.3)}, seed=seed)
        return [(d.status, d.stall_s) for d in (inj.decide("GET", "/x") for _ in range(50))]

    assert run(1) == run(1) and run(1) != run(2)
    assert {s for s, _ in run(1)} >= {None, 500, 503}
    inj = FaultInjector({"GET /x": {"outage_until": datetime.now(UTC) + timedelta(minutes=1)}})
    assert inj.decide("GET", "/x").status == 503 and inj.decide("GET", "/y").status is None
    with pytest.raises(ValueError):
        FaultConfig(outage_until=datetime(2030, 1, 1))  # naive: refused


async def test_webhooks_duplicated_and_out_of_order() -> None:
    sent: list[bytes] = []

    async def send(d: WebhookDelivery) -> int:
        sent.append(d.body)
        return 200

    batch = [WebhookDelivery(url="http://x", body=str(i).encode(), topic="orders/create") for i in range(4)]
    inj = FaultInjector({"WEBHOOK orders/create": {"duplicate_webhooks": True}})
    results = await deliver_webhooks(batch, injector=inj, send=send)
    assert sent == [b"0", b"1", b"2", b"3", b"0", b"1", b"2", b"3"] and all(r.status == 200 for r in results)
    sent.clear()
    inj = FaultInjector({"WEBHOOK *": {"out_of_order_webhooks": True}}, seed=5)
    await deliver_webhooks(batch, injector=inj, send=send)
    assert sorted(sent) == [b"0", b"1", b"2", b"3"] and sent != [b"0", b"1", b"2", b"3"]
    sent.clear()
    await deliver_webhooks(batch, injector=FaultInjector(), send=send)
    assert sent == [b"0", b"1", b"2", b"3"]
    down = await deliver_webhooks([WebhookDelivery(url="http://127.0.0.1:9/none", body=b"{}")])
    assert down[0].status is None and down[0].error
