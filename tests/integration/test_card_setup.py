"""Saving a card: a Checkout Session in setup mode on the Stripe emulator, then the customer's saved cards."""

from __future__ import annotations

import uuid

import pytest

from billing import stripe_edge
from billing.errors import ServiceUnavailable
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


# ---------------------------------------------------------------------------------------------- Stripe failures


def test_a_key_stripe_rejects_is_a_clear_400_on_every_card_path(tenant, stripe_emulator, stripe_key):
    connect(tenant, stripe_key)
    customer = create_customer(tenant)
    assert setup(tenant, customer["id"]).status == 201  # linked to a Stripe customer while the key worked
    stripe_emulator.set_key_state(stripe_key, "revoked")  # rolled or revoked in Stripe's dashboard since
    res = setup(tenant, customer["id"])
    assert res.status == 400, res.text
    assert res.body["code"] == "stripe_authentication_failed"
    assert res.body["details"]["stripe_http_status"] == 401 and "PUT /connections" in res.body["message"]
    listed = call("GET", f"/api/v1/customers/{customer['id']}/payment-methods", tenant=tenant)
    assert listed.status == 400 and listed.body["code"] == "stripe_authentication_failed"
    with pytest.raises(stripe_edge.StripeAuthenticationFailed):
        payment_methods.set_default(Scope(*tenant), customer["id"], "pm_card_visa")


def test_stripe_unreachable_is_503_with_retry_after_on_every_card_path(tenant, stripe_emulator, stripe_key):
    connect(tenant, stripe_key)
    customer = create_customer(tenant)
    assert setup(tenant, customer["id"]).status == 201
    stripe_emulator.start_outage("503")
    try:
        res = setup(tenant, customer["id"])
        listed = call("GET", f"/api/v1/customers/{customer['id']}/payment-methods", tenant=tenant)
        with pytest.raises(ServiceUnavailable):
            payment_methods.set_default(Scope(*tenant), customer["id"], "pm_card_visa")
    finally:
        stripe_emulator.end_outage()
    for answer in (res, listed):
        assert answer.status == 503, answer.text
        assert answer.body["code"] == "service_unavailable"
        assert {k.lower(): v for k, v in answer.headers.items()}["retry-after"] == "2"


def test_stripe_refusing_a_request_is_a_400_with_stripes_code(tenant, stripe_key):
    connect(tenant, stripe_key)
    customer = create_customer(tenant)
    assert setup(tenant, customer["id"]).status == 201
    with pytest.raises(stripe_edge.StripeRejected) as refused:
        payment_methods.set_default(Scope(*tenant), customer["id"], "pm_does_not_exist")
    assert refused.value.http_status == 400 and refused.value.details["stripe_code"] == "resource_missing"


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"k" * 41: "v"}, "metadata." + "k" * 41),
        ({"note": "x" * 501}, "metadata.note"),
        ({f"key{n}": "v" for n in range(47)}, "metadata"),  # 47 of the caller's and 4 of ours: 51 > 50
        ({"flexprice_customer_id": "cust_other"}, "metadata"),
    ],
)
def test_metadata_beyond_stripes_limits_is_400_and_nothing_reaches_stripe(
    tenant, stripe_emulator, stripe_key, metadata, field
):
    connect(tenant, stripe_key, customer_outbound=False)
    customer = create_customer(tenant)
    res = setup(tenant, customer["id"], metadata=metadata)
    assert res.status == 400, res.text
    assert res.body["code"] == "validation_error" and field in res.text
    assert stripe_emulator.objects(stripe_key, "checkout.session") == []
    assert stripe_emulator.objects(stripe_key, "customer") == []  # refused before anything was sent


def test_metadata_at_stripes_limits_is_sent(tenant, stripe_emulator, stripe_key):
    connect(tenant, stripe_key)
    customer = create_customer(tenant)
    res = setup(tenant, customer["id"], metadata={f"{n:02d}" + "k" * 38: "v" * 500 for n in range(20)})
    assert res.status == 201, res.text
    [session] = stripe_emulator.objects(stripe_key, "checkout.session")
    assert len(session["metadata"]) == 24 and session["metadata"]["00" + "k" * 38] == "v" * 500


# ---------------------------------------------------------------------------------------------- deleted at Stripe


def test_a_stripe_customer_deleted_before_its_event_arrived_is_replaced_on_card_setup(
    tenant, stripe_emulator, stripe_key
):
    import stripe

    from billing.services import mappings

    connect(tenant, stripe_key)
    customer = create_customer(tenant)
    first = setup(tenant, customer["id"]).body
    [old] = stripe_emulator.objects(stripe_key, "customer")
    stripe.StripeClient(stripe_key, base_addresses={"api": stripe_emulator.url}).v1.customers.delete(old["id"])
    # customer.deleted has not been applied here: the link still names the deleted customer
    res = setup(tenant, customer["id"])
    assert res.status == 201, res.text
    assert res.body["checkout_session_id"] != first["checkout_session_id"]
    [fresh] = stripe_emulator.objects(stripe_key, "customer")
    assert fresh["id"] != old["id"] and fresh["metadata"]["flexprice_customer_id"] == customer["id"]
    assert mappings.find(Scope(*tenant), "customer", customer["id"], "stripe")["provider_entity_id"] == fresh["id"]
    sessions = {s["id"]: s for s in stripe_emulator.objects(stripe_key, "checkout.session")}
    assert sessions[res.body["checkout_session_id"]]["customer"] == fresh["id"]
