"""Stripe webhooks end to end on the local stack: the Stripe emulator delivers signed events to the function URL, the
queue's poller runs the processor, and the card saved on the hosted Checkout page becomes the customer's default."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import requests
import stripe

from tests.e2e.conftest import LocalStack
from tests.e2e.test_api import new_key


def test_card_saved_through_checkout_becomes_default_via_the_function_url(stack: LocalStack):
    key = new_key(stack)
    tenant, environment = key["tenant"]["id"], key["environment"]["id"]
    api = requests.Session()
    api.headers.update({"x-api-key": key["api_key"], "content-type": "application/json"})
    stripe_url = str(stack.info["stripe_url"])
    secret_key = f"sk_test_{uuid.uuid4().hex}"
    client = stripe.StripeClient(secret_key, base_addresses={"api": stripe_url})
    endpoint = client.v1.webhook_endpoints.create(
        {"url": f"{stack.urls}/webhooks/stripe/{tenant}/{environment}", "enabled_events": ["*"]}
    )
    connection = api.post(
        f"{stack.api}/api/v1/connections",
        json={
            "name": "Stripe",
            "provider_type": "stripe",
            "encrypted_secret_data": {"secret_key": secret_key, "webhook_secret": endpoint.secret},
            "sync_config": {"customer": {"outbound": False}, "invoice": {"outbound": True}},
        },
        timeout=10,
    )
    assert connection.status_code == 201, connection.text

    # a forged delivery is refused at the door
    body = json.dumps({"id": "evt_forged", "type": "invoice.paid", "data": {"object": {}}}).encode()
    t = int(time.time())
    forged = hmac.new(b"whsec_not_theirs", f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    refused = requests.post(
        f"{stack.urls}/webhooks/stripe/{tenant}/{environment}",
        data=body,
        headers={"stripe-signature": f"t={t},v1={forged}", "content-type": "application/json"},
        timeout=5,
    )
    assert refused.status_code == 400 and refused.json()["details"]["reason"] == "signature_mismatch"

    customer = api.post(f"{stack.api}/api/v1/customers", json={"external_id": "acme", "name": "Acme"}, timeout=10)
    assert customer.status_code == 201, customer.text
    customer_id = customer.json()["id"]
    setup = api.post(
        f"{stack.api}/api/v1/payments/customers/{customer_id}/setup/intent",
        json={"success_url": "https://app.example.com/saved", "set_default": True},
        timeout=10,
    )
    assert setup.status_code == 201, setup.text
    session_id = setup.json()["checkout_session_id"]
    done = requests.post(
        f"{stripe_url}/_emulator/checkout/sessions/{session_id}/complete", json={"card": "4242424242424242"}, timeout=10
    )
    assert done.status_code == 200, done.text
    assert requests.post(f"{stripe_url}/_emulator/webhooks/wait", json={"timeout": 20}, timeout=30).ok
    assert requests.post(f"{stack.api}/_local/queues/drain?timeout=30", timeout=40).status_code == 200

    methods = api.get(f"{stack.api}/api/v1/payments/customers/{customer_id}/methods", timeout=10)
    assert methods.status_code == 200, methods.text
    [card] = methods.json()["providers"][0]["items"]
    assert card["is_default"] is True and card["card"]["last4"] == "4242"
    deliveries = requests.get(f"{stripe_url}/_emulator/webhooks", timeout=5).json()
    mine = [d for d in deliveries if d["url"].endswith(f"/{tenant}/{environment}")]
    assert mine and all(d["status"] == "delivered" for d in mine)
    assert "4242424242424242" not in stack.log() and endpoint.secret not in stack.log()
