"""Outbound webhooks through the local stack: the outbox stream, the relay, the delivery queue with its delays, and
the built-in receiver; every delivery verified with the ``standardwebhooks`` package."""

from __future__ import annotations

import time
import uuid
from typing import Any

import requests
from standardwebhooks.webhooks import Webhook


def _api(stack: Any, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(
        method, f"{stack.api}/api/v1{path}", json=body, headers={"x-api-key": stack.info["api_key"]}, timeout=30
    )


def test_a_receiver_outage_spanning_several_retries_loses_nothing(stack):
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    receiver = f"{stack.api}/_local/webhooks/receiver/{name}"
    assert requests.put(receiver, json={"status": 503}, timeout=5).status_code == 200  # the outage begins
    created = _api(stack, "POST", "/webhooks/endpoints", {"url": receiver, "event_types": ["customer.created"]})
    assert created.status_code == 201, created.text
    secret = created.json()["secret"]
    customers = []
    for n in range(3):
        res = _api(stack, "POST", "/customers", {"external_id": f"{name}-{n}", "name": f"Customer {n}"})
        assert res.status_code == 201, res.text
        customers.append(res.json()["id"])

    def requests_seen() -> list[dict[str, Any]]:
        return list(requests.get(receiver, timeout=5).json()["requests"])

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # three attempts of each event fail
        refused = [r for r in requests_seen() if r["answered"] == 503]
        if len({r["headers"]["webhook-id"] for r in refused}) == 3 and len(refused) >= 6:
            break
        time.sleep(0.2)
    assert requests.put(receiver, json={"status": 200}, timeout=5).status_code == 200  # the outage ends

    while time.monotonic() < deadline + 30:
        if len([r for r in requests_seen() if r["answered"] == 200]) >= 3:
            break
        time.sleep(0.2)
    seen = requests_seen()
    delivered = {}
    for r in seen:
        payload = Webhook(secret).verify(r["body"], r["headers"])  # each attempt is signed
        assert payload["event_type"] == "customer.created"
        if r["answered"] == 200:
            delivered[r["headers"]["webhook-id"]] = payload["customer"]["id"]
    assert sorted(delivered.values()) == sorted(customers)  # every event, under one webhook-id each
    attempts: dict[str, int] = {}
    for r in seen:
        attempts[r["headers"]["webhook-id"]] = attempts.get(r["headers"]["webhook-id"], 0) + 1
    assert set(attempts) == set(delivered) and min(attempts.values()) >= 3
    log = _api(stack, "GET", f"/webhooks/endpoints/{created.json()['id']}/deliveries").json()["items"]
    assert sorted(d["status"] for d in log) == ["succeeded"] * 3
