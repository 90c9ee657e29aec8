"""Saving a card: a Checkout Session in setup mode on the Stripe emulator, then the customer's saved cards."""

from __future__ import annotations

import uuid

import pytest

from billing.scope import Scope
from billing.services import payment_methods
from tests.integration.test_stripe_customer_sync import connect, create_customer
from tests.support.api import call


@pytest.fixture
def stripe_key(stripe_emulator) -> str:
    return f"sk_test_{uuid.uuid4().hex}"


def setup(tenant, customer_id: str, **body):
    return call(
        "POST",
        f"/api/v1/payments/customers/{customer_id}/setup/intent",
        tenant=tenant,
        body={"success_url": "https://app.example.com/billing/saved", **body},
    )


def test_setup_intent_returns_a_hosted_checkout_page(tenant, stripe_emulator, stripe_key):
    connect(tenant, stripe_key, customer_outbound=False)
    customer = create_customer(tenant)
    res = setup(tenant, customer["id"], set_default=True, cancel_url="https://app.example.com/billing")
    assert res.status == 201, res.text
    body = res.body
    assert body["checkout_url"].startswith(stripe_emulator.url + "/")
    assert body["checkout_session_id"].startswith("cs_test_")
    assert body["setup_intent_id"].startswith("seti_")
    assert body["client_secret"].startswith(body["setup_intent_id"] + "_secret_")
    assert body["usage"] == "off_session" and body["customer_id"] == customer["id"]
    assert body["created_at"].endswith("Z") and body["expires_at"].endswith("Z")
    [session] = [
        s for s in stripe_emulator.objects(stripe_key, "checkout.session") if s["id"] == body["checkout_session_id"]
    ]
    assert session["mode"] == "setup"
    assert session["metadata"]["flexprice_set_default"] == "true"
    assert session["metadata"]["flexprice_customer_id"] == customer["id"]
    # the customer was synced to Stripe on the way (customer outbound sync was off)
    [stripe_customer] = stripe_emulator.objects(stripe_key, "customer")
    assert session["customer"] == stripe_customer["id"]


def test_saved_card_is_listed_with_brand_last4_expiry_and_default(tenant, stripe_emulator, stripe_key):
    connect(tenant, stripe_key)
    customer = create_customer(tenant)
    body = setup(tenant, customer["id"], set_default=True).body
    stripe_emulator.complete_checkout_session(body["checkout_session_id"], card="4242424242424242")
    listed = call("GET", f"/api/v1/customers/{customer['id']}/payment-methods", tenant=tenant)
    assert listed.status == 200, listed.text
    [card] = listed.body["providers"][0]["items"]
    assert card["card"]["brand"] == "visa" and card["card"]["last4"] == "4242"
    assert isinstance(card["card"]["exp_month"], int) and card["is_default"] is False
    assert "4242424242424242" not in listed.text
    payment_methods.set_default(Scope(*tenant), customer["id"], card["id"])
    again = call("GET", f"/api/v1/payments/customers/{customer['id']}/methods", tenant=tenant)
    assert again.body["providers"][0]["items"][0]["is_default"] is True


def test_without_a_connection_the_caller_is_told_to_connect_stripe(tenant):
    customer = create_customer(tenant)
    res = setup(tenant, customer["id"])
    assert res.status == 400 and res.body["code"] == "invalid_operation"
    assert "connection" in res.body["message"]
    empty = call("GET", f"/api/v1/customers/{customer['id']}/payment-methods", tenant=tenant)
    assert empty.status == 200 and empty.body["providers"][0]["items"] == []


@pytest.mark.parametrize(
    "bad",
    [
        {"success_url": "not a url"},
        {"provider": "paypal"},
        {"usage": "sometimes"},
        {"payment_method_types": ["sepa_debit"]},
        {"set_defualt": True},
        {"set_default": "maybe"},
    ],
)
def test_bad_setup_requests_are_400_and_create_nothing(tenant, stripe_emulator, stripe_key, bad):
    connect(tenant, stripe_key)
    customer = create_customer(tenant)
    res = setup(tenant, customer["id"], **bad)
    assert res.status == 400, res.text
    assert res.body["code"] == "validation_error"
    assert stripe_emulator.objects(stripe_key, "checkout.session") == []


def test_unknown_or_foreign_customer_is_404(tenant, other_tenant, stripe_key):
    connect(tenant, stripe_key)
    customer = create_customer(tenant)
    assert setup(other_tenant, customer["id"]).status == 404
    assert setup(tenant, "cust_01KAXS2E5Q3V8W9Y0Z1A2B3C4D").status == 404
    assert call("GET", f"/api/v1/customers/{customer['id']}/payment-methods", tenant=other_tenant).status == 404
