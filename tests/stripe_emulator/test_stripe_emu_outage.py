"""The outage control: between start and end every API request fails, nothing is executed, and it is all counted."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from stripe_emulator import StripeEmulator


@pytest.fixture(autouse=True)
def no_outage_left(emulator: StripeEmulator) -> Iterator[None]:
    yield
    emulator.end_outage()


def helper(emulator: StripeEmulator, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{emulator.url}/_emulator{path}", data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


def no_retries(emulator: StripeEmulator, api_key: str) -> stripe.StripeClient:
    return stripe.StripeClient(api_key, base_addresses={"api": emulator.url}, max_network_retries=0)


def test_every_request_is_answered_503_until_the_outage_ends(emulator: StripeEmulator, api_key: str) -> None:
    client = no_retries(emulator, api_key)
    started = emulator.start_outage()
    assert started["active"] is True and started["kind"] == "503" and started["refused"] == 0
    with pytest.raises(stripe.APIError) as down:
        client.v1.customers.create(params={"name": "Ada"}, options={"idempotency_key": "outage-create-1"})
    assert down.value.http_status == 503
    assert down.value.error.type == "api_error"
    with pytest.raises(stripe.APIError):
        client.v1.customers.list()
    with pytest.raises(stripe.APIError):  # even a bad key: nothing behind the edge answers
        stripe.StripeClient(
            "sk_live_nope", base_addresses={"api": emulator.url}, max_network_retries=0
        ).v1.customers.list()
    assert emulator.objects(api_key, "customer") == []
    assert emulator.outage_status()["refused"] == 3

    ended = emulator.end_outage()
    assert ended["active"] is False and ended["refused"] == 3 and ended["seconds"] >= 0
    # The key the refused request carried was never stored: the same request now executes, once.
    created = client.v1.customers.create(params={"name": "Ada"}, options={"idempotency_key": "outage-create-1"})
    again = client.v1.customers.create(params={"name": "Ada"}, options={"idempotency_key": "outage-create-1"})
    assert again.id == created.id
    assert [c["id"] for c in emulator.objects(api_key, "customer")] == [created.id]
    assert emulator.outage_status()["refused"] == 3


def test_the_sdk_retries_through_a_503_outage_and_gives_up(emulator: StripeEmulator, api_key: str) -> None:
    client = stripe.StripeClient(api_key, base_addresses={"api": emulator.url}, max_network_retries=1)
    emulator.start_outage("503")
    with pytest.raises(stripe.APIError):
        client.v1.customers.create(params={"name": "Ada"})
    assert emulator.end_outage()["refused"] == 2  # the first attempt and the retry
    statuses = [r["status"] for r in emulator.request_log()[-2:]]
    assert statuses == [503, 503]


def test_a_connection_outage_closes_connections_unanswered(emulator: StripeEmulator, api_key: str) -> None:
    client = no_retries(emulator, api_key)
    logged = len(emulator.request_log())
    emulator.start_outage("connection")
    with pytest.raises(stripe.APIConnectionError):
        client.v1.customers.create(params={"name": "Ada"})
    assert emulator.outage_status() | {"seconds": 0} == {
        "kind": "connection",
        "active": True,
        "refused": 1,
        "started_at": emulator.outage_status()["started_at"],
        "ended_at": None,
        "seconds": 0,
    }
    assert len(emulator.request_log()) == logged  # nothing was answered
    emulator.end_outage()
    assert client.v1.customers.create(params={"name": "Ada"}).name == "Ada"
    assert len(emulator.objects(api_key, "customer")) == 1


def test_the_outage_is_controlled_over_http_and_helpers_stay_up(emulator: StripeEmulator, api_key: str) -> None:
    assert helper(emulator, "POST", "/outage", {"kind": "503"})["active"] is True
    assert helper(emulator, "GET", "/outage")["kind"] == "503"
    assert helper(emulator, "GET", "/faults") == []  # the control surface answers during the outage
    request = urllib.request.Request(f"{emulator.url}/v1/customers", headers={"Authorization": f"Bearer {api_key}"})
    with pytest.raises(urllib.error.HTTPError) as down:
        urllib.request.urlopen(request)
    assert down.value.code == 503
    assert json.loads(down.value.read())["error"]["type"] == "api_error"
    ended = helper(emulator, "DELETE", "/outage")
    assert ended["active"] is False and ended["refused"] == 1
    with urllib.request.urlopen(request) as response:
        assert response.status == 200
    with pytest.raises(urllib.error.HTTPError) as bad:
        helper(emulator, "POST", "/outage", {"kind": "meteor"})
    assert bad.value.code == 400
    assert helper(emulator, "GET", "/outage")["active"] is False


def test_reset_ends_an_outage(emulator: StripeEmulator) -> None:
    emulator.start_outage()
    emulator.reset()
    assert emulator.outage_status() == {}
