"""Idempotency keys and injected faults (500, 429, timeout after the object was created)."""

from __future__ import annotations

import json
import urllib.request

import pytest
import stripe

from stripe_emulator import StripeEmulator


def test_same_key_same_params_replays_the_response(client: stripe.StripeClient, emulator: StripeEmulator) -> None:
    options = {"idempotency_key": "sync-cust_1"}
    first = client.v1.customers.create(params={"email": "x@example.com"}, options=options)
    second = client.v1.customers.create(params={"email": "x@example.com"}, options=options)
    assert first.id == second.id
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(client.v1.customers.list().data) == 1
    replays = [r for r in emulator.request_log() if r["idempotency_key"] == "sync-cust_1"]
    assert [r["replayed"] for r in replays] == [False, True]


def test_same_key_different_params_is_an_idempotency_error(client: stripe.StripeClient) -> None:
    client.v1.customers.create(params={"email": "x@example.com"}, options={"idempotency_key": "k1"})
    with pytest.raises(stripe.IdempotencyError) as err:
        client.v1.customers.create(params={"email": "y@example.com"}, options={"idempotency_key": "k1"})
    assert err.value.http_status == 400 and err.value.error.type == "idempotency_error"


def test_keys_are_scoped_per_api_key(emulator: StripeEmulator) -> None:
    one = stripe.StripeClient("sk_test_scope_one", base_addresses={"api": emulator.url})
    two = stripe.StripeClient("sk_test_scope_two", base_addresses={"api": emulator.url})
    a = one.v1.customers.create(params={"name": "A"}, options={"idempotency_key": "shared"})
    b = two.v1.customers.create(params={"name": "A"}, options={"idempotency_key": "shared"})
    assert a.id != b.id


def test_card_errors_are_replayed_too(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    params = {
        "amount": 100,
        "currency": "usd",
        "customer": customer.id,
        "payment_method": "pm_card_chargeDeclined",
        "confirm": True,
        "off_session": True,
    }
    for _ in range(2):
        with pytest.raises(stripe.CardError):
            client.v1.payment_intents.create(params=params, options={"idempotency_key": "charge-1"})  # type: ignore[arg-type]
    assert len(client.v1.payment_intents.list().data) == 1


def test_500_then_success_with_sdk_retries(emulator: StripeEmulator, api_key: str) -> None:
    client = stripe.StripeClient(api_key, base_addresses={"api": emulator.url}, max_network_retries=2)
    emulator.inject_fault("POST", "/v1/customers", "500", count=2)
    customer = client.v1.customers.create(params={"name": "Retried"})
    assert len(client.v1.customers.list().data) == 1 and customer.name == "Retried"
    statuses = [r["status"] for r in emulator.request_log() if r["path"] == "/v1/customers" and r["method"] == "POST"]
    assert statuses[-3:] == [500, 500, 200]


def test_500_without_retries_surfaces_an_api_error(client: stripe.StripeClient, emulator: StripeEmulator) -> None:
    emulator.inject_fault("POST", "/v1/invoices/*/finalize", "500")
    customer = client.v1.customers.create()
    invoice = client.v1.invoices.create(params={"customer": customer.id})
    with pytest.raises(stripe.APIError) as err:
        client.v1.invoices.finalize_invoice(invoice.id)
    assert err.value.http_status == 500
    assert client.v1.invoices.retrieve(invoice.id).status == "draft"  # nothing happened
    assert client.v1.invoices.finalize_invoice(invoice.id).status == "paid"  # zero total


def test_429_burst_answers_stripes_rate_limit_error(client: stripe.StripeClient, emulator: StripeEmulator) -> None:
    emulator.inject_fault("POST", "/v1/invoiceitems", "429", count=3)
    customer = client.v1.customers.create()
    for _ in range(3):
        with pytest.raises(stripe.RateLimitError) as err:
            client.v1.invoice_items.create(params={"customer": customer.id, "amount": 5, "currency": "usd"})
        assert err.value.http_status == 429 and err.value.error.code == "rate_limit"
    assert client.v1.invoice_items.list(params={"customer": customer.id}).data == []
    client.v1.invoice_items.create(params={"customer": customer.id, "amount": 5, "currency": "usd"})
    assert len(client.v1.invoice_items.list(params={"customer": customer.id}).data) == 1


def test_timeout_after_create_then_idempotent_retry_returns_the_same_object(
    emulator: StripeEmulator, api_key: str
) -> None:
    client = stripe.StripeClient(
        api_key, base_addresses={"api": emulator.url}, http_client=stripe.RequestsClient(timeout=0.5)
    )
    customer = client.v1.customers.create()
    emulator.inject_fault("POST", "/v1/invoices", "timeout", delay=5)
    key = {"idempotency_key": "invoice-for-inv_42"}
    params = {"customer": customer.id, "metadata": {"our_invoice_id": "inv_42"}}
    with pytest.raises(stripe.APIConnectionError):
        client.v1.invoices.create(params=params, options=key)  # type: ignore[arg-type]
    created = client.v1.invoices.list(params={"customer": customer.id}).data
    assert len(created) == 1  # Stripe did the work although the caller saw a timeout
    retried = client.v1.invoices.create(params=params, options=key)  # type: ignore[arg-type]
    assert retried.id == created[0].id
    assert retried.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(client.v1.invoices.list(params={"customer": customer.id}).data) == 1


def test_timeout_with_sdk_retries_creates_no_duplicate(emulator: StripeEmulator, api_key: str) -> None:
    client = stripe.StripeClient(
        api_key,
        base_addresses={"api": emulator.url},
        http_client=stripe.RequestsClient(timeout=0.5),
        max_network_retries=2,
    )
    emulator.inject_fault("POST", "/v1/customers", "timeout", delay=5)
    customer = client.v1.customers.create(params={"name": "once"})
    assert [c.id for c in client.v1.customers.list().data] == [customer.id]


def test_faults_over_http_helpers(emulator: StripeEmulator, client: stripe.StripeClient) -> None:
    def call(method: str, path: str, body: dict[str, object] | None = None) -> object:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{emulator.url}/_emulator{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    faults = call("POST", "/faults", {"method": "GET", "path": "/v1/customers/*", "kind": "500", "count": 1})
    assert faults == [{"method": "GET", "path": "/v1/customers/*", "kind": "500", "count": 1, "delay": 30.0}]
    customer = client.v1.customers.create()
    with pytest.raises(stripe.APIError):
        client.v1.customers.retrieve(customer.id)
    assert call("GET", "/faults") == []
    call("POST", "/faults", {"method": "GET", "path": "/v1/customers/*", "kind": "429", "count": 5})
    assert call("DELETE", "/faults") == []
    assert client.v1.customers.retrieve(customer.id).id == customer.id
    before = call("GET", "/clock")
    after = call("POST", "/clock/advance", {"seconds": 3600})
    assert after["offset"] - before["offset"] == 3600  # type: ignore[index]
