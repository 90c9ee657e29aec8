"""Payments toward invoices through the API: OFFLINE, CARD (off-session, on the Stripe emulator) and PAYMENT_LINK
(Checkout in payment mode, settled by the webhook through the intake, the queue and the processor).

Given a finalized invoice (built by the scheduler from a real subscription), when a payment is created, then the
payment and the invoice agree: amounts to the minor unit, statuses, and exactly one Stripe object per payment.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from billing.schemas.payments import SetupIntentCreate
from billing.scope import Scope
from billing.services import ledger, payment_methods, webhooks
from tests.integration.test_stripe_customer_sync import connect
from tests.integration.test_stripe_invoice_sync import finalized_invoice
from tests.integration.test_webhooks import connect as connect_with_webhooks
from tests.integration.test_webhooks import drain, endpoint_secret, loopback, queues  # noqa: F401 - fixtures
from tests.support.api import call
from tests.support.invoicing import make_queue

VISA = "4242424242424242"
DECLINED = "4000000000000002"
NEEDS_AUTH = "4000002500003155"


@pytest.fixture
def queue(aws_endpoint):
    return make_queue(aws_endpoint)


@pytest.fixture
def stripe_key(stripe_emulator) -> str:
    return f"sk_test_{uuid.uuid4().hex}"


def pay(tenant, invoice: dict, method: str, amount: str | None = None, **fields):
    body = {
        "destination_type": "INVOICE",
        "destination_id": invoice["id"],
        "payment_method_type": method,
        "amount": amount or invoice["amount_remaining"],
        "currency": invoice["currency"],
        **fields,
    }
    return call("POST", "/api/v1/payments", tenant=tenant, body=body)


def invoice_of(tenant, invoice_id: str) -> dict:
    res = call("GET", f"/api/v1/invoices/{invoice_id}", tenant=tenant)
    assert res.status == 200, res.text
    return res.body


def payments_of(tenant, **query) -> list[dict]:
    res = call("GET", "/api/v1/payments", tenant=tenant, query=query)
    assert res.status == 200, res.text
    return res.body["items"]


def save_card(tenant, stripe_emulator, customer_id: str, card: str) -> str:
    """The card-setup flow: hosted Checkout in setup mode, completed with ``card``, made the default."""
    scope = Scope(*tenant)
    session = payment_methods.setup_intent(
        scope,
        customer_id,
        SetupIntentCreate(success_url="https://app.example.com/saved", set_default=True),
        request_id=uuid.uuid4().hex,
    )
    stripe_emulator.complete_checkout_session(session["checkout_session_id"], card=card)
    items = payment_methods.saved_methods(scope, customer_id)["providers"][0]["items"]
    method_id = str(items[0]["id"])
    payment_methods.set_default(scope, customer_id, method_id)
    return method_id


def intents_for(stripe_emulator, key: str, payment_id: str) -> list[dict]:
    return [
        pi
        for pi in stripe_emulator.objects(key, "payment_intent")
        if pi["metadata"].get("flexprice_payment_id") == payment_id
    ]


# ---------------------------------------------------------------------------------------------- OFFLINE


def test_offline_partial_then_full_payment_marks_the_invoice_paid(tenant, queue):
    inv = finalized_invoice(tenant, queue)
    total = Decimal(inv["amount_due"])
    first = pay(tenant, inv, "OFFLINE", "10.00", metadata={"reference": "WIRE-1"})
    assert first.status == 201, first.text
    body = first.body
    assert body["id"].startswith("pay_") and body["payment_status"] == "SUCCEEDED"
    assert body["amount"] == "10.00" and body["currency"] == "usd" and body["succeeded_at"].endswith("Z")
    assert body["destination_type"] == "INVOICE" and body["destination_id"] == inv["id"]
    assert body["metadata"] == {"reference": "WIRE-1"} and body["idempotency_key"]
    partial = invoice_of(tenant, inv["id"])
    assert partial["payment_status"] == "PENDING"
    assert partial["amount_paid"] == "10.00"
    assert Decimal(partial["amount_remaining"]) == total - Decimal("10.00")

    rest = pay(tenant, partial, "OFFLINE")
    assert rest.status == 201, rest.text
    paid = invoice_of(tenant, inv["id"])
    assert paid["payment_status"] == "SUCCEEDED" and paid["paid_at"]
    assert Decimal(paid["amount_paid"]) == total and paid["amount_remaining"] == "0.00"
    listed = payments_of(tenant, destination_id=inv["id"])
    assert [p["id"] for p in listed] == [rest.body["id"], body["id"]]

    again = pay(tenant, paid, "OFFLINE", "1.00")
    assert again.status == 400 and again.body["code"] == "invalid_operation"
    assert "already paid" in again.body["message"]


def test_more_than_the_remaining_amount_is_refused_and_nothing_is_written(tenant, queue):
    inv = finalized_invoice(tenant, queue)
    over = Decimal(inv["amount_remaining"]) + Decimal("0.01")
    res = pay(tenant, inv, "OFFLINE", str(over))
    assert res.status == 400 and res.body["code"] == "validation_error"
    assert "amount_remaining" in res.body["message"]
    assert payments_of(tenant) == []
    assert invoice_of(tenant, inv["id"])["amount_paid"] == "0.00"


def test_exactness_follows_the_currency_exponent(tenant, queue):
    inv = finalized_invoice(tenant, queue, currency="jpy", amount="1.5")
    assert "." not in inv["amount_remaining"]
    bad = pay(tenant, inv, "OFFLINE", "100.5")
    assert bad.status == 400 and bad.body["code"] == "validation_error"
    assert "JPY allows (0)" in bad.body["message"]
    ok = pay(tenant, inv, "OFFLINE", "100")
    assert ok.status == 201, ok.text
    assert ok.body["amount"] == "100" and ok.body["currency"] == "jpy"
    assert invoice_of(tenant, inv["id"])["amount_paid"] == "100"


# ---------------------------------------------------------------------------------------------- idempotency


def test_same_key_and_request_replays_the_first_payment_and_a_different_request_is_409(tenant, queue):
    inv = finalized_invoice(tenant, queue)
    first = pay(tenant, inv, "OFFLINE", "10.00", idempotency_key="wire-0001")
    assert first.status == 201, first.text
    replay = pay(tenant, inv, "OFFLINE", "10", idempotency_key="wire-0001")  # the same amount, written differently
    assert replay.status == 201 and replay.body == first.body
    assert invoice_of(tenant, inv["id"])["amount_paid"] == "10.00"  # applied once
    conflict = pay(tenant, inv, "OFFLINE", "11.00", idempotency_key="wire-0001")
    assert conflict.status == 409 and conflict.body["code"] == "already_exists"
    assert conflict.body["details"]["payment_id"] == first.body["id"]
    assert len(payments_of(tenant)) == 1
    # keys are per tenant and environment
    other = pay(tenant, inv, "OFFLINE", "5.00", idempotency_key="wire-0002")
    assert other.status == 201 and other.body["id"] != first.body["id"]


# ---------------------------------------------------------------------------------------------- CARD


def test_card_payment_charges_the_default_card_off_session(tenant, queue, stripe_emulator, stripe_key):
    connect(tenant, stripe_key, customer_outbound=False)
    inv = finalized_invoice(tenant, queue)
    method = save_card(tenant, stripe_emulator, inv["customer_id"], VISA)
    res = pay(tenant, inv, "CARD", idempotency_key="card-0001")
    assert res.status == 201, res.text
    body = res.body
    assert body["payment_status"] == "SUCCEEDED" and body["payment_gateway"] == "stripe"
    assert body["payment_method_id"] == method and body["error_message"] is None
    [intent] = intents_for(stripe_emulator, stripe_key, body["id"])
    assert body["gateway_payment_id"] == intent["id"] and intent["status"] == "succeeded"
    assert intent["amount"] == int(Decimal(inv["amount_due"]) * 100) and intent["currency"] == "usd"
    assert intent["metadata"]["flexprice_invoice_id"] == inv["id"]
    [sent] = [
        r
        for r in stripe_emulator.request_log()
        if r["path"] == "/v1/payment_intents"
        and r["params"].get("metadata", {}).get("flexprice_payment_id") == body["id"]
    ]
    assert sent["params"]["confirm"] == "true" and sent["params"]["off_session"] == "true"
    assert sent["idempotency_key"] == f"billing:payment.card:{body['id']}"
    paid = invoice_of(tenant, inv["id"])
    assert paid["payment_status"] == "SUCCEEDED" and paid["amount_paid"] == inv["amount_due"]
    # a replay answers the same payment without charging again
    again = pay(tenant, inv, "CARD", idempotency_key="card-0001")
    assert again.status == 201 and again.body["id"] == body["id"]
    assert len(intents_for(stripe_emulator, stripe_key, body["id"])) == 1


def test_declined_card_fails_the_payment_and_the_invoice_stays_unpaid_and_visible(
    tenant, queue, stripe_emulator, stripe_key
):
    connect(tenant, stripe_key, customer_outbound=False)
    inv = finalized_invoice(tenant, queue)
    save_card(tenant, stripe_emulator, inv["customer_id"], DECLINED)
    res = pay(tenant, inv, "CARD")
    assert res.status == 201, res.text
    assert res.body["payment_status"] == "FAILED" and res.body["failed_at"]
    assert res.body["error_message"] == "Your card was declined."
    assert res.body["gateway_payment_id"].startswith("pi_")
    failed = invoice_of(tenant, inv["id"])
    assert failed["payment_status"] == "FAILED" and failed["amount_paid"] == "0.00"
    assert [p["payment_status"] for p in payments_of(tenant, payment_status="FAILED")] == ["FAILED"]
    # a good card saved later still pays it
    save_card(tenant, stripe_emulator, inv["customer_id"], VISA)
    retry = pay(tenant, failed, "CARD")
    assert retry.status == 201 and retry.body["payment_status"] == "SUCCEEDED", retry.text
    assert invoice_of(tenant, inv["id"])["payment_status"] == "SUCCEEDED"


def test_card_needing_authentication_fails_off_session(tenant, queue, stripe_emulator, stripe_key):
    connect(tenant, stripe_key, customer_outbound=False)
    inv = finalized_invoice(tenant, queue)
    save_card(tenant, stripe_emulator, inv["customer_id"], NEEDS_AUTH)
    res = pay(tenant, inv, "CARD", "5.00")
    assert res.status == 201, res.text
    assert res.body["payment_status"] == "FAILED"
    assert "authentic" in res.body["error_message"].lower()
    assert invoice_of(tenant, inv["id"])["payment_status"] == "FAILED"


def test_card_payment_without_a_saved_card_tells_the_caller_to_set_one_up(tenant, queue, stripe_emulator, stripe_key):
    connect(tenant, stripe_key, customer_outbound=False)
    inv = finalized_invoice(tenant, queue)
    res = pay(tenant, inv, "CARD")
    assert res.status == 400 and res.body["code"] == "invalid_operation"
    assert f"/payments/customers/{inv['customer_id']}/setup/intent" in res.body["message"]
    assert payments_of(tenant) == []
    assert stripe_emulator.objects(stripe_key, "payment_intent") == []


def test_partial_card_payment_on_a_given_payment_method(tenant, queue, stripe_emulator, stripe_key):
    connect(tenant, stripe_key, customer_outbound=False)
    inv = finalized_invoice(tenant, queue)
    method = save_card(tenant, stripe_emulator, inv["customer_id"], VISA)
    res = pay(tenant, inv, "CARD", "12.34", payment_method_id=method)
    assert res.status == 201 and res.body["payment_status"] == "SUCCEEDED", res.text
    after = invoice_of(tenant, inv["id"])
    assert after["payment_status"] == "PENDING" and after["amount_paid"] == "12.34"
    foreign = pay(tenant, after, "CARD", "1.00", payment_method_id="pm_card_visa")
    assert foreign.status == 400 and "not saved for customer" in foreign.body["message"]


def test_a_timeout_after_stripe_charged_never_charges_twice(tenant, queue, stripe_emulator, stripe_key):
    connect(tenant, stripe_key, customer_outbound=False)
    inv = finalized_invoice(tenant, queue)
    save_card(tenant, stripe_emulator, inv["customer_id"], VISA)
    stripe_emulator.inject_fault("POST", "/v1/payment_intents", "timeout", count=1, delay=0.2)
    try:
        res = pay(tenant, inv, "CARD")
    finally:
        stripe_emulator.clear_faults()
    assert res.status == 201 and res.body["payment_status"] == "SUCCEEDED", res.text
    assert len(intents_for(stripe_emulator, stripe_key, res.body["id"])) == 1


def test_an_outage_leaves_the_payment_processing_and_a_replay_resumes_it(tenant, queue, stripe_emulator, stripe_key):
    connect(tenant, stripe_key, customer_outbound=False)
    inv = finalized_invoice(tenant, queue)
    save_card(tenant, stripe_emulator, inv["customer_id"], VISA)
    stripe_emulator.inject_fault("POST", "/v1/payment_intents", "500", count=50)
    try:
        res = pay(tenant, inv, "CARD", idempotency_key="card-outage")
    finally:
        stripe_emulator.clear_faults()
    assert res.status == 503 and res.body["code"] == "service_unavailable", res.text
    payment_id = res.body["details"]["payment_id"]
    stuck = call("GET", f"/api/v1/payments/{payment_id}", tenant=tenant).body
    assert stuck["payment_status"] == "PROCESSING"
    assert invoice_of(tenant, inv["id"])["amount_paid"] == "0.00"
    resumed = pay(tenant, inv, "CARD", idempotency_key="card-outage")
    assert resumed.status == 201 and resumed.body["id"] == payment_id
    assert resumed.body["payment_status"] == "SUCCEEDED"
    assert len(intents_for(stripe_emulator, stripe_key, payment_id)) == 1


# ---------------------------------------------------------------------------------------------- PAYMENT_LINK


def test_payment_link_is_settled_by_the_checkout_webhook_and_saves_the_card(
    tenant,
    queue,
    stripe_emulator,
    stripe_key,
    queues,  # noqa: F811 - the webhook tier's fixture
    loopback,  # noqa: F811 - the webhook tier's fixture
):
    connect_with_webhooks(tenant, stripe_key, secret=endpoint_secret(stripe_emulator, stripe_key, loopback, tenant))
    inv = finalized_invoice(tenant, queue)
    offline = pay(tenant, inv, "OFFLINE", "3.40")
    assert offline.status == 201, offline.text
    inv = invoice_of(tenant, inv["id"])
    res = pay(
        tenant,
        inv,
        "PAYMENT_LINK",
        save_card_and_make_default=True,
        success_url="https://app.example.com/paid",
        cancel_url="https://app.example.com/invoice",
    )
    assert res.status == 201, res.text
    body = res.body
    assert body["payment_status"] == "PENDING" and body["payment_url"].startswith(stripe_emulator.url + "/checkout/")
    [session] = [
        s for s in stripe_emulator.objects(stripe_key, "checkout.session") if s["id"] == body["gateway_tracking_id"]
    ]
    assert session["mode"] == "payment" and session["amount_total"] == int(Decimal(inv["amount_remaining"]) * 100)
    assert session["metadata"]["flexprice_payment_id"] == body["id"]
    assert session["metadata"]["flexprice_set_default"] == "true"
    [intent] = intents_for(stripe_emulator, stripe_key, body["id"])
    assert intent["setup_future_usage"] == "off_session" and intent["id"] == body["gateway_payment_id"]
    assert invoice_of(tenant, inv["id"])["payment_status"] == "PENDING"

    stripe_emulator.complete_checkout_session(session["id"], card=VISA)
    assert stripe_emulator.wait_for_webhooks(timeout=10)
    drain(queues.url)

    outcomes = {
        d["event_type"]: webhooks.find_record(Scope(*tenant), d["event_id"])["outcome"]
        for d in stripe_emulator.webhook_deliveries()
        if d["event_type"] in ("checkout.session.completed", "payment_intent.succeeded")
        and webhooks.find_record(Scope(*tenant), d["event_id"])
    }
    # both events name the payment; whichever is processed first settles it, the other finds it settled
    settled = [outcomes["checkout.session.completed"].split(",")[0], outcomes["payment_intent.succeeded"]]
    assert sorted(settled) == ["already_succeeded", "succeeded"]
    assert outcomes["checkout.session.completed"].endswith(",default_set")
    done = call("GET", f"/api/v1/payments/{body['id']}", tenant=tenant).body
    assert done["payment_status"] == "SUCCEEDED" and done["succeeded_at"]
    paid = invoice_of(tenant, inv["id"])
    assert paid["payment_status"] == "SUCCEEDED" and paid["amount_remaining"] == "0.00"
    assert paid["amount_paid"] == paid["amount_due"]  # the offline part is kept, the link adds the rest
    recorded = ledger.payments_of(Scope(*tenant), inv["id"])
    assert sorted(p["id"] for p in recorded) == sorted([offline.body["id"], body["id"]])  # no duplicate record
    [card] = payment_methods.saved_methods(Scope(*tenant), inv["customer_id"])["providers"][0]["items"]
    assert card["is_default"] is True and card["card"]["last4"] == "4242"


def test_payment_link_needs_a_success_url(tenant, queue, stripe_key):
    connect(tenant, stripe_key, customer_outbound=False)
    inv = finalized_invoice(tenant, queue)
    res = pay(tenant, inv, "PAYMENT_LINK")
    assert res.status == 400 and res.body["code"] == "validation_error"
    assert res.body["details"]["errors"][0]["field"] == "success_url"


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"amount": "0"}, "validation_error"),
        ({"amount": "-5.00"}, "validation_error"),
        ({"amount": "1.001"}, "validation_error"),
        ({"amount": "ten"}, "validation_error"),
        ({"currency": "eur"}, "validation_error"),
        ({"currency": "zzz"}, "validation_error"),
        ({"payment_method_type": "BITCOIN"}, "validation_error"),
        ({"destination_type": "WALLET"}, "validation_error"),
        ({"destination_id": ""}, "validation_error"),
        ({"success_url": "not a url"}, "validation_error"),
        ({"payment_method_type": "CREDITS"}, "invalid_operation"),
        ({"payment_method_type": "ACH"}, "invalid_operation"),
        ({"destination_type": "CUSTOMER"}, "invalid_operation"),
        ({"process_payment": False}, "invalid_operation"),
        ({"payment_gateway": "razorpay", "payment_method_type": "CARD"}, "invalid_operation"),
    ],
)
def test_bad_requests_are_400_and_write_nothing(tenant, queue, change, code):
    inv = finalized_invoice(tenant, queue)
    body = {
        "destination_type": "INVOICE",
        "destination_id": inv["id"],
        "payment_method_type": "OFFLINE",
        "amount": "1.00",
        "currency": "usd",
        **change,
    }
    res = call("POST", "/api/v1/payments", tenant=tenant, body=body)
    assert res.status == 400, res.text
    assert res.body["code"] == code
    assert payments_of(tenant) == []
    assert invoice_of(tenant, inv["id"])["amount_paid"] == "0.00"


def test_unknown_and_voided_invoices(tenant, queue):
    inv = finalized_invoice(tenant, queue)
    missing = pay(tenant, {**inv, "id": "inv_01KAXS2E5Q3V8W9Y0Z1A2B3C4D"}, "OFFLINE", "1.00")
    assert missing.status == 404 and missing.body["code"] == "not_found"
    voided = call("POST", f"/api/v1/invoices/{inv['id']}/void", tenant=tenant)
    assert voided.status == 200, voided.text
    res = pay(tenant, inv, "OFFLINE", "1.00")
    assert res.status == 400 and res.body["code"] == "invalid_operation" and "VOIDED" in res.body["message"]


# ---------------------------------------------------------------------------------------------- reads


def test_get_list_filters_pagination_and_tenant_isolation(tenant, other_tenant, queue):
    inv = finalized_invoice(tenant, queue)
    made = [pay(tenant, inv, "OFFLINE", "1.00", idempotency_key=f"k{i}").body for i in range(3)]
    got = call("GET", f"/api/v1/payments/{made[0]['id']}", tenant=tenant)
    assert got.status == 200 and got.body == made[0]
    page = call("GET", "/api/v1/payments", tenant=tenant, query={"limit": 2, "offset": 1}).body
    assert page["pagination"] == {"total": 3, "limit": 2, "offset": 1}
    assert [p["id"] for p in page["items"]] == [made[1]["id"], made[0]["id"]]
    assert len(payments_of(tenant, payment_method_type="offline", payment_status="SUCCEEDED")) == 3
    assert payments_of(tenant, payment_method_type="CARD") == []
    assert payments_of(tenant, destination_id="inv_other") == []
    assert [p["id"] for p in payments_of(tenant, order="asc")] == [m["id"] for m in made]
    bad = call("GET", "/api/v1/payments", tenant=tenant, query={"payment_status": "LOST"})
    assert bad.status == 400 and bad.body["code"] == "validation_error"

    assert call("GET", f"/api/v1/payments/{made[0]['id']}", tenant=other_tenant).status == 404
    assert payments_of(other_tenant) == []
    assert payments_of(other_tenant, destination_id=inv["id"]) == []
    foreign = pay(other_tenant, inv, "OFFLINE", "1.00")
    assert foreign.status == 404
    assert invoice_of(tenant, inv["id"])["amount_paid"] == "3.00"
    assert call("GET", "/api/v1/payments/pay_01KAXS2E5Q3V8W9Y0Z1A2B3C4D", tenant=tenant).status == 404
