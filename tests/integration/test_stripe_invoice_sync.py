"""Finalized invoices synced to the Stripe emulator: once, with Stripe's total equal to ours to the minor unit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing import wiring
from billing.domain.money import to_minor_units
from billing.scope import Scope
from billing.services import invoice_sync, sync_queue
from billing.store import invoices as keys
from tests.integration.test_stripe_customer_sync import connect
from tests.support.api import call
from tests.support.invoicing import fixed, invoices, make_queue, run_scheduler, setup, subscribe, usd_usage, use


@pytest.fixture
def queue(aws_endpoint):
    return make_queue(aws_endpoint)


@pytest.fixture
def stripe_key(stripe_emulator) -> str:
    return f"sk_test_{uuid.uuid4().hex}"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def finalized_invoice(tenant, queue, currency: str = "usd", amount: str = "0.10", tokens: int = 1234, **sub_fields):
    ctx = setup(
        tenant,
        lambda mid: [usd_usage(mid, amount=amount, currency=currency), fixed(amount_for(currency), currency=currency)],
    )
    subscribe(tenant, ctx, currency=currency, start_date="2026-01-15T00:00:00Z", **sub_fields)
    use(tenant, ctx, tokens, "2026-01-20T08:00:00Z")
    assert run_scheduler(queue, at("2026-02-15T02:00:00Z"), tenant) == 1
    (inv,) = cycle_invoices(tenant)
    assert inv["invoice_status"] == "FINALIZED"
    return inv


def cycle_invoices(tenant):
    return [i for i in invoices(tenant) if i["billing_reason"] == "SUBSCRIPTION_CYCLE"]


def amount_for(currency: str) -> str:
    return {"usd": "20.00", "jpy": "2000", "kwd": "20.125"}[currency]


def sync(tenant, invoice_id: str) -> None:
    sync_queue.handle_message(invoice_sync.message(Scope(*tenant), invoice_id))


def stripe_invoices(emulator, key):
    return emulator.objects(key, "invoice")


@pytest.mark.parametrize(("currency", "amount"), [("usd", "0.10"), ("jpy", "1.5"), ("kwd", "0.00125")])
def test_invoice_is_synced_once_with_an_exact_total(tenant, queue, stripe_emulator, stripe_key, currency, amount):
    connect(tenant, stripe_key)
    inv = finalized_invoice(tenant, queue, currency=currency, amount=amount)
    sync(tenant, inv["id"])
    sync(tenant, inv["id"])  # a redelivered message
    [stripe_inv] = stripe_invoices(stripe_emulator, stripe_key)
    got = call("GET", f"/api/v1/invoices/{inv['id']}", tenant=tenant).body
    assert stripe_inv["currency"] == currency
    # Stripe's total is what is due here; in three-decimal currencies the amount Stripe can charge ends in 0, and the
    # rounding is written off here as an adjustment, so the two stay equal.
    assert stripe_inv["total"] == to_minor_units(Decimal(got["amount_due"]), currency)
    total_minor = to_minor_units(Decimal(inv["total"]), currency)
    if currency == "kwd":
        assert stripe_inv["total"] == total_minor - total_minor % 10
        assert Decimal(got["rounding_adjustment"]) == Decimal(inv["total"]) - Decimal(got["amount_due"])
    else:
        assert stripe_inv["total"] == total_minor
    assert stripe_inv["metadata"]["flexprice_invoice_id"] == inv["id"]
    assert stripe_inv["status"] in ("open", "paid")
    items = stripe_emulator.objects(stripe_key, "invoiceitem")
    rounding = 1 if total_minor % 10 and currency == "kwd" else 0
    assert len(items) == len([li for li in inv["line_items"] if Decimal(li["amount"]) != 0]) + rounding
    assert sum(i["amount"] for i in items) == stripe_inv["total"]
    assert got["invoice_status"] == "FINALIZED"
    mapping = call(
        "GET", "/api/v1/integrations/mappings", tenant=tenant, query={"entity_type": "invoice", "entity_id": inv["id"]}
    ).body["items"]
    assert [m["provider_entity_id"] for m in mapping] == [stripe_inv["id"]]
    outbox = wiring.entities().get(keys.sync_pk(Scope(*tenant)), inv["id"])
    assert outbox["status"] == "done" and "GSI1PK" not in outbox


def test_send_invoice_gets_a_hosted_url_and_pdf(tenant, queue, stripe_emulator, stripe_key):
    connect(tenant, stripe_key)
    inv = finalized_invoice(tenant, queue, collection_method="send_invoice")
    sync(tenant, inv["id"])
    [stripe_inv] = stripe_invoices(stripe_emulator, stripe_key)
    assert stripe_inv["collection_method"] == "send_invoice" and stripe_inv["status"] == "open"
    got = call("GET", f"/api/v1/invoices/{inv['id']}", tenant=tenant).body
    record = keys.invoices().get(Scope(*tenant), inv["id"])
    assert record["hosted_invoice_url"] == stripe_inv["hosted_invoice_url"]
    assert record["invoice_pdf_url"] == stripe_inv["invoice_pdf"]
    assert got["invoice_pdf_url"] == stripe_inv["invoice_pdf"]


def test_faults_never_duplicate_stripe_objects(tenant, queue, stripe_emulator, stripe_key):
    connect(tenant, stripe_key)
    inv = finalized_invoice(tenant, queue)
    stripe_emulator.inject_fault("POST", "/v1/invoices", "timeout", count=1, delay=0.2)
    stripe_emulator.inject_fault("POST", "/v1/invoiceitems", "500", count=2)
    stripe_emulator.inject_fault("POST", "/v1/invoices/*/finalize", "429", count=1)
    # The SDK retries the timeout and the 500s with the same idempotency keys; a rate limit fails the message,
    # which the queue redelivers later.
    with pytest.raises(Exception, match="rate-limiting"):
        sync(tenant, inv["id"])
    stripe_emulator.clear_faults()
    sync(tenant, inv["id"])
    assert len(stripe_invoices(stripe_emulator, stripe_key)) == 1
    assert len(stripe_emulator.objects(stripe_key, "invoiceitem")) == 2
    assert len(stripe_emulator.objects(stripe_key, "customer")) == 1


def test_outage_then_recovery_completes_the_sync_without_duplicates(tenant, queue, stripe_emulator, stripe_key):
    connect(tenant, stripe_key)
    inv = finalized_invoice(tenant, queue)
    stripe_emulator.inject_fault("POST", "/v1/invoiceitems", "500", count=100)
    with pytest.raises(Exception):  # noqa: B017 - the SDK's own retries are exhausted: the message is retried later
        sync(tenant, inv["id"])
    stripe_emulator.clear_faults()
    pending = [i["invoice_id"] for i in invoice_sync.pending(datetime(2100, 1, 1, tzinfo=UTC))]
    assert inv["id"] in pending
    sync(tenant, inv["id"])
    [stripe_inv] = stripe_invoices(stripe_emulator, stripe_key)
    assert stripe_inv["total"] == to_minor_units(Decimal(inv["total"]), "usd")
    assert inv["id"] not in [i["invoice_id"] for i in invoice_sync.pending(datetime(2100, 1, 1, tzinfo=UTC))]


def test_without_connection_or_with_invoice_sync_off_nothing_is_sent(tenant, other_tenant, queue, stripe_emulator):
    inv = finalized_invoice(tenant, queue)
    sync(tenant, inv["id"])
    outbox = wiring.entities().get(keys.sync_pk(Scope(*tenant)), inv["id"])
    assert outbox["status"] == "skipped" and "no active Stripe connection" in outbox["reason"]
    key = f"sk_test_{uuid.uuid4().hex}"
    res = call(
        "POST",
        "/api/v1/connections",
        tenant=other_tenant,
        body={
            "name": "Stripe",
            "provider_type": "stripe",
            "encrypted_secret_data": {"secret_key": key},
            "sync_config": {"invoice": {"outbound": False}},
        },
    )
    assert res.status == 201
    other = finalized_invoice(other_tenant, queue)
    sync(other_tenant, other["id"])
    assert stripe_emulator.objects(key, "invoice") == []


def test_an_invoice_stripe_collects_cannot_be_charged_twice(tenant, queue, stripe_emulator, stripe_key):
    connect(tenant, stripe_key)
    inv = finalized_invoice(tenant, queue, collection_method="send_invoice")
    sync(tenant, inv["id"])
    [stripe_inv] = stripe_invoices(stripe_emulator, stripe_key)
    intents_before = len(stripe_emulator.objects(stripe_key, "payment_intent"))
    payment = {"destination_type": "INVOICE", "destination_id": inv["id"], "currency": "usd"}
    card = call(
        "POST",
        "/api/v1/payments",
        tenant=tenant,
        body={**payment, "payment_method_type": "CARD", "amount": inv["total"]},
    )
    assert card.status == 409 and card.body["code"] == "conflict"
    assert stripe_inv["id"] in card.body["message"]
    partial = call(
        "POST", "/api/v1/payments", tenant=tenant, body={**payment, "payment_method_type": "OFFLINE", "amount": "1.00"}
    )
    assert partial.status == 409 and "in full" in partial.body["message"]
    assert len(stripe_emulator.objects(stripe_key, "payment_intent")) == intents_before
    full = call(
        "POST",
        "/api/v1/payments",
        tenant=tenant,
        body={**payment, "payment_method_type": "OFFLINE", "amount": inv["total"]},
    )
    assert full.status == 201, full.text
    assert call("GET", f"/api/v1/invoices/{inv['id']}", tenant=tenant).body["payment_status"] == "SUCCEEDED"
    [settled] = stripe_invoices(stripe_emulator, stripe_key)
    assert settled["status"] == "paid" and settled["paid_out_of_band"] is True
