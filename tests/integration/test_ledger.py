"""One ledger of money: every invoice collected at most once, and ours and Stripe's agree.

Given invoices built by the scheduler, a Stripe connection on the emulator with its webhook endpoint delivering to the
intake over loopback, when money moves through any channel (Stripe's collection, CARD, PAYMENT_LINK, OFFLINE, manual
settlement) in any order relative to the Stripe sync, then the money collected minus refunds never exceeds what is
due, and once webhooks have been applied our invoice and Stripe's agree.
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
import stripe

from billing import wiring
from billing.domain.money import to_minor_units
from billing.scope import Scope
from billing.services import invoice_sync, ledger, ledger_audit, mappings, reconciliation, sync_queue
from billing.store import invoices as keys
from tests.integration.test_payments import invoice_of, pay, payments_of, save_card
from tests.integration.test_stripe_invoice_sync import finalized_invoice
from tests.integration.test_webhooks import connect as connect_with_webhooks
from tests.integration.test_webhooks import drain, endpoint_secret, loopback, queues  # noqa: F401 - fixtures
from tests.support.api import call
from tests.support.invoicing import make_queue

VISA = "4242424242424242"


@pytest.fixture
def queue(aws_endpoint):
    return make_queue(aws_endpoint)


@pytest.fixture
def stripe_key(stripe_emulator) -> str:
    return f"sk_test_{uuid.uuid4().hex}"


@pytest.fixture
def stripe_env(tenant, stripe_emulator, stripe_key, loopback, queues):  # noqa: F811 - fixtures
    """A Stripe connection whose webhooks reach the intake; returns (client, queues)."""
    connect_with_webhooks(tenant, stripe_key, secret=endpoint_secret(stripe_emulator, stripe_key, loopback, tenant))
    client = stripe.StripeClient(stripe_key, base_addresses={"api": stripe_emulator.url})
    return client, queues


def sync(tenant, invoice_id: str) -> None:
    sync_queue.handle_message(invoice_sync.message(Scope(*tenant), invoice_id))


def settle(stripe_emulator, queues_, until=lambda: False, timeout: float = 15) -> None:
    """Let Stripe's webhooks arrive and the processor apply them (until ``until()`` holds or nothing is left)."""
    deadline = time.monotonic() + timeout
    while True:
        assert stripe_emulator.wait_for_webhooks(timeout=10)
        drain(queues_.url)
        if until() or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def stripe_invoices_of(stripe_emulator, key: str, invoice_id: str) -> list[dict[str, Any]]:
    return [
        i for i in stripe_emulator.objects(key, "invoice") if i["metadata"].get("flexprice_invoice_id") == invoice_id
    ]


def outbox(tenant, invoice_id: str) -> dict[str, Any]:
    item = wiring.entities().get(keys.sync_pk(Scope(*tenant)), invoice_id)
    assert item is not None
    return item


def collected(stripe_emulator, key: str, invoice_id: str) -> int:
    """Minor units Stripe actually charged for one of our invoices (its invoices' payments and our own intents)."""
    total = 0
    for pi in stripe_emulator.objects(key, "payment_intent"):
        if pi["status"] != "succeeded":
            continue
        ours = pi["metadata"].get("flexprice_invoice_id") == invoice_id
        invoice = pi.get("invoice")
        linked = invoice and any(i["id"] == invoice for i in stripe_invoices_of(stripe_emulator, key, invoice_id))
        if ours or linked:
            total += int(pi.get("amount_received") or pi["amount"])
    return total


def customer_with_card(tenant, stripe_emulator, invoice: dict[str, Any], card: str = VISA) -> None:
    save_card(tenant, stripe_emulator, invoice["customer_id"], card)


# ---------------------------------------------------------------------------------------------- finding 1


def test_an_invoice_paid_offline_before_its_sync_is_never_sent_to_stripe(
    tenant, queue, stripe_env, stripe_emulator, stripe_key
):
    inv = finalized_invoice(tenant, queue)
    customer_with_card(tenant, stripe_emulator, inv)
    assert pay(tenant, inv, "OFFLINE").status == 201
    sync(tenant, inv["id"])
    assert stripe_invoices_of(stripe_emulator, stripe_key, inv["id"]) == []
    box = outbox(tenant, inv["id"])
    assert box["status"] == "done" and box["reason"] == "paid before it reached Stripe"
    final = invoice_of(tenant, inv["id"])
    assert final["payment_status"] == "SUCCEEDED" and final["amount_paid"] == inv["total"]
    assert len(payments_of(tenant, destination_id=inv["id"])) == 1
    assert collected(stripe_emulator, stripe_key, inv["id"]) == 0


def test_a_partly_paid_invoice_is_collected_by_stripe_only_for_the_remainder(
    tenant, queue, stripe_env, stripe_emulator, stripe_key
):
    _client, queues_ = stripe_env
    inv = finalized_invoice(tenant, queue)
    customer_with_card(tenant, stripe_emulator, inv)
    assert pay(tenant, inv, "OFFLINE", "5.00").status == 201
    sync(tenant, inv["id"])
    [stripe_inv] = stripe_invoices_of(stripe_emulator, stripe_key, inv["id"])
    total = Decimal(inv["total"])
    assert stripe_inv["total"] == to_minor_units(total - Decimal("5.00"), "usd")
    items = [i for i in stripe_emulator.objects(stripe_key, "invoiceitem") if i["invoice"] == stripe_inv["id"]]
    assert [i["amount"] for i in items if i["description"] == "Payments already received"] == [-500]
    settle(stripe_emulator, queues_, lambda: invoice_of(tenant, inv["id"])["payment_status"] == "SUCCEEDED")
    final = invoice_of(tenant, inv["id"])
    assert final["payment_status"] == "SUCCEEDED" and Decimal(final["amount_paid"]) == total
    assert collected(stripe_emulator, stripe_key, inv["id"]) == to_minor_units(total - Decimal("5.00"), "usd")
    methods = sorted(p["payment_method_type"] for p in payments_of(tenant, destination_id=inv["id"]))
    assert methods == ["CARD", "OFFLINE"]
    [row] = reconciliation.drift(Scope(*tenant))
    assert not row["drift"], row
    [audited] = ledger_audit.audit_environment(Scope(*tenant))
    assert audited.problems == [] and audited.stripe_net == total - Decimal("5.00"), audited.as_dict()


def test_a_card_payment_before_the_sync_makes_the_sync_send_nothing(
    tenant, queue, stripe_env, stripe_emulator, stripe_key
):
    inv = finalized_invoice(tenant, queue)
    customer_with_card(tenant, stripe_emulator, inv)
    res = pay(tenant, inv, "CARD")
    assert res.status == 201 and res.body["payment_status"] == "SUCCEEDED", res.text
    sync(tenant, inv["id"])
    assert stripe_invoices_of(stripe_emulator, stripe_key, inv["id"]) == []
    assert collected(stripe_emulator, stripe_key, inv["id"]) == to_minor_units(Decimal(inv["total"]), "usd")


def test_a_payment_link_in_flight_holds_the_sync_until_it_is_paid(
    tenant, queue, stripe_env, stripe_emulator, stripe_key
):
    _client, queues_ = stripe_env
    inv = finalized_invoice(tenant, queue)
    customer_with_card(tenant, stripe_emulator, inv)
    link = pay(tenant, inv, "PAYMENT_LINK", success_url="https://app.example.com/paid")
    assert link.status == 201 and link.body["payment_status"] == "PENDING", link.text
    sync(tenant, inv["id"])  # the link holds the invoice: nothing is sent, the outbox item stays pending
    assert stripe_invoices_of(stripe_emulator, stripe_key, inv["id"]) == []
    assert outbox(tenant, inv["id"])["status"] == "pending"
    card = pay(tenant, inv, "CARD")
    assert card.status == 409 and card.body["code"] == "conflict" and link.body["id"] in card.body["message"]
    session = link.body["gateway_metadata"]["checkout_session_id"]
    stripe_emulator.complete_checkout_session(session, card=VISA)
    settle(stripe_emulator, queues_, lambda: invoice_of(tenant, inv["id"])["payment_status"] == "SUCCEEDED")
    sync(tenant, inv["id"])
    assert stripe_invoices_of(stripe_emulator, stripe_key, inv["id"]) == []
    assert collected(stripe_emulator, stripe_key, inv["id"]) == to_minor_units(Decimal(inv["total"]), "usd")
    assert len(payments_of(tenant, destination_id=inv["id"])) == 1


def test_an_expired_payment_link_fails_and_lets_stripe_collect(tenant, queue, stripe_env, stripe_emulator, stripe_key):
    client, queues_ = stripe_env
    inv = finalized_invoice(tenant, queue)
    customer_with_card(tenant, stripe_emulator, inv)
    link = pay(tenant, inv, "PAYMENT_LINK", success_url="https://app.example.com/paid")
    client.v1.checkout.sessions.expire(link.body["gateway_metadata"]["checkout_session_id"])
    settle(
        stripe_emulator,
        queues_,
        lambda: call("GET", f"/api/v1/payments/{link.body['id']}", tenant=tenant).body["payment_status"] == "FAILED",
    )
    assert call("GET", f"/api/v1/payments/{link.body['id']}", tenant=tenant).body["payment_status"] == "FAILED"
    sync(tenant, inv["id"])
    settle(stripe_emulator, queues_, lambda: invoice_of(tenant, inv["id"])["payment_status"] == "SUCCEEDED")
    assert invoice_of(tenant, inv["id"])["payment_status"] == "SUCCEEDED"
    assert collected(stripe_emulator, stripe_key, inv["id"]) == to_minor_units(Decimal(inv["total"]), "usd")


def test_finalizing_through_the_api_queues_the_sync_at_once(tenant, queue, monkeypatch):
    from datetime import UTC, datetime

    from billing.services import invoicing
    from tests.support.invoicing import fixed, setup, subscribe

    sent: list[str] = []
    monkeypatch.setattr(invoice_sync, "request_invoice_sync", lambda scope, invoice_id: sent.append(invoice_id))
    ctx = setup(tenant, lambda mid: [fixed("20.00")])
    sub = subscribe(tenant, ctx, start_date="2026-01-15T00:00:00Z")
    stored = keys.subscriptions().get(Scope(*tenant), sub["id"])
    draft = invoicing.draft(Scope(*tenant), stored, datetime(2026, 2, 16, tzinfo=UTC))
    res = call("POST", f"/api/v1/invoices/{draft['id']}/finalize", tenant=tenant)
    assert res.status == 200, res.text
    assert sent == [draft["id"]]


# ---------------------------------------------------------------------------------------------- findings 2, 3, 4


def synced_send_invoice(tenant, queue, stripe_emulator, stripe_key) -> tuple[dict[str, Any], dict[str, Any]]:
    inv = finalized_invoice(tenant, queue, collection_method="send_invoice")
    sync(tenant, inv["id"])
    [stripe_inv] = stripe_invoices_of(stripe_emulator, stripe_key, inv["id"])
    assert stripe_inv["status"] == "open"
    return inv, stripe_inv


def test_void_voids_the_open_stripe_invoice_first(tenant, queue, stripe_env, stripe_emulator, stripe_key):
    _client, queues_ = stripe_env
    inv, stripe_inv = synced_send_invoice(tenant, queue, stripe_emulator, stripe_key)
    res = call("POST", f"/api/v1/invoices/{inv['id']}/void", tenant=tenant, body={})
    assert res.status == 200, res.text
    [after] = stripe_invoices_of(stripe_emulator, stripe_key, inv["id"])
    assert after["status"] == "void"
    settle(stripe_emulator, queues_)
    assert invoice_of(tenant, inv["id"])["invoice_status"] == "VOIDED"
    paying = stripe_emulator.pay_hosted_invoice  # the hosted page of a void invoice takes no money
    with pytest.raises(Exception):  # noqa: B017
        paying(stripe_inv["id"], VISA)
    assert collected(stripe_emulator, stripe_key, inv["id"]) == 0


def test_void_is_refused_when_stripe_already_collected(tenant, queue, stripe_env, stripe_emulator, stripe_key):
    inv, stripe_inv = synced_send_invoice(tenant, queue, stripe_emulator, stripe_key)
    stripe_emulator.pay_hosted_invoice(stripe_inv["id"], VISA)  # paid at Stripe; its webhook not applied yet
    res = call("POST", f"/api/v1/invoices/{inv['id']}/void", tenant=tenant, body={})
    assert res.status == 409 and res.body["code"] == "conflict" and "refund" in res.body["message"]
    assert invoice_of(tenant, inv["id"])["invoice_status"] == "FINALIZED"


def test_manual_settlement_marks_the_stripe_invoice_paid_out_of_band(
    tenant, queue, stripe_env, stripe_emulator, stripe_key
):
    _client, queues_ = stripe_env
    inv, _stripe_inv = synced_send_invoice(tenant, queue, stripe_emulator, stripe_key)
    res = call("PUT", f"/api/v1/invoices/{inv['id']}/payment", tenant=tenant, body={"payment_status": "SUCCEEDED"})
    assert res.status == 200, res.text
    [after] = stripe_invoices_of(stripe_emulator, stripe_key, inv["id"])
    assert after["status"] == "paid" and after["paid_out_of_band"] is True and after["amount_paid"] == 0
    settle(stripe_emulator, queues_)
    final = invoice_of(tenant, inv["id"])
    assert final["payment_status"] == "SUCCEEDED" and final["amount_paid"] == inv["total"]
    assert collected(stripe_emulator, stripe_key, inv["id"]) == 0


def test_an_offline_payment_on_a_synced_invoice_is_recorded_once(
    tenant, queue, stripe_env, stripe_emulator, stripe_key
):
    _client, queues_ = stripe_env
    inv, _stripe_inv = synced_send_invoice(tenant, queue, stripe_emulator, stripe_key)
    assert pay(tenant, inv, "OFFLINE").status == 201
    settle(stripe_emulator, queues_)  # Stripe's invoice.paid (paid out of band, amount_paid 0) arrives
    listed = payments_of(tenant, destination_id=inv["id"])
    assert [p["payment_method_type"] for p in listed] == ["OFFLINE"]
    assert invoice_of(tenant, inv["id"])["amount_paid"] == inv["total"]
    assert ledger.payments_of(Scope(*tenant), inv["id"])[0]["payment_method_type"] == "OFFLINE"


def test_paid_amount_is_never_lowered_by_a_manual_update(tenant, queue):
    inv = finalized_invoice(tenant, queue)
    assert pay(tenant, inv, "OFFLINE", "10.00").status == 201
    res = call(
        "PUT",
        f"/api/v1/invoices/{inv['id']}/payment",
        tenant=tenant,
        body={"payment_status": "OVERPAID", "amount": "5.00"},
    )
    assert res.status == 400
    assert invoice_of(tenant, inv["id"])["amount_paid"] == "10.00"


# ---------------------------------------------------------------------------------------------- finding 5


def test_one_customer_billed_in_two_currencies_syncs_both(tenant, queue, stripe_env, stripe_emulator, stripe_key):
    usd = finalized_invoice(tenant, queue, collection_method="send_invoice")
    sync(tenant, usd["id"])
    eur = finalized_invoice_for_customer(tenant, queue, usd["customer_id"], "eur")
    sync(tenant, eur["id"])
    [a] = stripe_invoices_of(stripe_emulator, stripe_key, usd["id"])
    [b] = stripe_invoices_of(stripe_emulator, stripe_key, eur["id"])
    assert (a["currency"], b["currency"]) == ("usd", "eur")
    assert a["customer"] == b["customer"]
    assert b["total"] == to_minor_units(Decimal(eur["amount_due"]), "eur")


def finalized_invoice_for_customer(tenant, queue, customer_id: str, currency: str) -> dict[str, Any]:
    from datetime import UTC, datetime

    from tests.support.invoicing import fixed, run_scheduler, setup, subscribe

    ctx = setup(tenant, lambda mid: [fixed("30.00", currency=currency)], customer="other", event_name="calls")
    ctx["customer"] = {"id": customer_id}
    subscribe(tenant, ctx, currency=currency, start_date="2026-03-15T00:00:00Z", collection_method="send_invoice")
    run_scheduler(queue, datetime(2026, 4, 15, 2, tzinfo=UTC), tenant)
    found = [
        i
        for i in call("GET", "/api/v1/invoices", tenant=tenant, query={"limit": 100}).body["items"]
        if i["currency"] == currency and i["invoice_status"] == "FINALIZED" and Decimal(i["total"]) > 0
    ]
    assert found, "no finalized invoice in " + currency
    return found[0]


# ---------------------------------------------------------------------------------------------- finding 6, 7


def test_below_stripes_minimum_is_kept_payable_here(tenant, queue, stripe_env, stripe_emulator, stripe_key):
    inv = finalized_invoice(tenant, queue)
    # Pay all but 0.30 USD offline: Stripe could not charge the rest (its minimum is 0.50 USD).
    rest = Decimal("0.30")
    assert pay(tenant, inv, "OFFLINE", str(Decimal(inv["total"]) - rest)).status == 201
    sync(tenant, inv["id"])
    assert stripe_invoices_of(stripe_emulator, stripe_key, inv["id"]) == []
    box = outbox(tenant, inv["id"])
    assert box["status"] == "skipped" and "minimum" in box["reason"]
    left = invoice_of(tenant, inv["id"])
    assert left["amount_remaining"] == "0.30"
    assert pay(tenant, left, "OFFLINE").status == 201  # nobody else holds it
    assert invoice_of(tenant, inv["id"])["payment_status"] == "SUCCEEDED"


# ---------------------------------------------------------------------------------------------- finding 8


def test_a_sync_resumed_after_stripe_forgot_its_keys_creates_nothing_twice(
    tenant, queue, stripe_env, stripe_emulator, stripe_key
):
    inv = finalized_invoice(tenant, queue, collection_method="send_invoice")
    # The first attempt created the Stripe draft and one item, then died before storing the link.
    stripe_emulator.inject_fault("POST", "/v1/invoiceitems", "500", 10)
    with pytest.raises(Exception):  # noqa: B017
        sync(tenant, inv["id"])
    stripe_emulator.clear_faults()
    scope = Scope(*tenant)
    link = mappings.find(scope, "invoice", inv["id"], "stripe")
    assert link is not None
    # Stripe forgets idempotency keys after 24 hours: the resumed sync must find what it made, not create it again.
    stripe_emulator.advance_clock(25 * 3600)
    sync(tenant, inv["id"])
    sync(tenant, inv["id"])
    found = stripe_invoices_of(stripe_emulator, stripe_key, inv["id"])
    assert len(found) == 1 and found[0]["status"] == "open"
    lines = [li for li in inv["line_items"] if Decimal(li["amount"]) != 0]
    items = [i for i in stripe_emulator.objects(stripe_key, "invoiceitem") if i["invoice"] == found[0]["id"]]
    assert len(items) == len(lines)
    assert found[0]["total"] == to_minor_units(Decimal(inv["total"]), "usd")


def test_a_sync_whose_link_was_never_stored_finds_its_stripe_draft(
    tenant, queue, stripe_env, stripe_emulator, stripe_key
):
    inv = finalized_invoice(tenant, queue, collection_method="send_invoice")
    stripe_emulator.inject_fault("POST", "/v1/invoiceitems", "500", 10)
    with pytest.raises(Exception):  # noqa: B017
        sync(tenant, inv["id"])
    stripe_emulator.clear_faults()
    scope = Scope(*tenant)
    link = mappings.find(scope, "invoice", inv["id"], "stripe")
    assert link is not None
    table = wiring.entities()  # as if the process had died between Stripe's answer and storing the link
    table.client.delete_item(TableName=table.name, Key={"PK": {"S": f"{scope.prefix}#eim"}, "SK": {"S": link["id"]}})
    for pk, sk in (
        (f"{scope.prefix}#eim#entity", f"invoice#{inv['id']}#stripe"),
        (f"{scope.prefix}#eim#provider", f"stripe#invoice#{link['provider_entity_id']}"),
    ):
        table.client.delete_item(TableName=table.name, Key={"PK": {"S": pk}, "SK": {"S": sk}})
    stripe_emulator.advance_clock(25 * 3600)
    sync(tenant, inv["id"])
    found = stripe_invoices_of(stripe_emulator, stripe_key, inv["id"])
    assert [f["id"] for f in found] == [link["provider_entity_id"]] and found[0]["status"] == "open"
    assert found[0]["total"] == to_minor_units(Decimal(inv["total"]), "usd")


# ---------------------------------------------------------------------------------------------- findings 6, 10


def test_a_stripe_credit_balance_pays_part_and_both_sides_agree(tenant, queue, stripe_env, stripe_emulator, stripe_key):
    client, queues_ = stripe_env
    inv = finalized_invoice(tenant, queue)
    customer_with_card(tenant, stripe_emulator, inv)
    stripe_customer = mappings.find(Scope(*tenant), "customer", inv["customer_id"], "stripe")["provider_entity_id"]
    client.v1.customers.update(stripe_customer, {"balance": -500})  # a 5.00 credit the customer holds at Stripe
    sync(tenant, inv["id"])
    settle(stripe_emulator, queues_, lambda: invoice_of(tenant, inv["id"])["payment_status"] == "SUCCEEDED")
    final = invoice_of(tenant, inv["id"])
    assert final["payment_status"] == "SUCCEEDED" and final["amount_paid"] == inv["total"]
    paid = {p["payment_method_type"]: p["amount"] for p in payments_of(tenant, destination_id=inv["id"])}
    assert paid == {"CARD": str(Decimal(inv["total"]) - Decimal("5.00")), "CREDITS": "5.00"}
    assert collected(stripe_emulator, stripe_key, inv["id"]) == to_minor_units(Decimal(inv["total"]), "usd") - 500


def test_a_card_needing_authentication_shows_the_invoice_failed_until_paid(
    tenant, queue, stripe_env, stripe_emulator, stripe_key
):
    _client, queues_ = stripe_env
    inv = finalized_invoice(tenant, queue)
    customer_with_card(tenant, stripe_emulator, inv, card="4000002760003184")
    sync(tenant, inv["id"])
    settle(stripe_emulator, queues_, lambda: invoice_of(tenant, inv["id"])["payment_status"] == "FAILED")
    assert invoice_of(tenant, inv["id"])["payment_status"] == "FAILED"
    [stripe_inv] = stripe_invoices_of(stripe_emulator, stripe_key, inv["id"])
    stripe_emulator.pay_hosted_invoice(stripe_inv["id"], VISA)  # the customer authenticates on the hosted page
    settle(stripe_emulator, queues_, lambda: invoice_of(tenant, inv["id"])["payment_status"] == "SUCCEEDED")
    final = invoice_of(tenant, inv["id"])
    assert final["payment_status"] == "SUCCEEDED" and final["amount_paid"] == inv["total"]


def test_a_payment_event_without_a_positive_amount_marks_nothing_paid(tenant, queue, stripe_env, stripe_emulator):
    from billing.services import webhook_effects

    inv = finalized_invoice(tenant, queue)
    customer_with_card(tenant, stripe_emulator, inv)
    link = pay(tenant, inv, "PAYMENT_LINK", success_url="https://app.example.com/paid")
    assert link.status == 201, link.text
    for amount in (0, None):
        intent = {
            "id": f"pi_{uuid.uuid4().hex[:20]}",
            "object": "payment_intent",
            "currency": "usd",
            "amount_received": amount,
            "metadata": {"flexprice_payment_id": link.body["id"], "flexprice_invoice_id": inv["id"]},
        }
        event = {"id": f"evt_{uuid.uuid4().hex}", "type": "payment_intent.succeeded", "data": {"object": intent}}
        assert webhook_effects.payment_intent_succeeded(Scope(*tenant), event) == "rejected_amount"
    assert call("GET", f"/api/v1/payments/{link.body['id']}", tenant=tenant).body["payment_status"] == "PENDING"
    assert invoice_of(tenant, inv["id"])["amount_paid"] == "0.00"


def test_the_ledger_audit_names_money_stripe_took_that_we_did_not_record(
    tenant, queue, stripe_env, stripe_emulator, stripe_key
):
    _client, _queues = stripe_env
    inv = finalized_invoice(tenant, queue)
    customer_with_card(tenant, stripe_emulator, inv)
    stripe_emulator.configure_webhooks(drop_next=1000)  # Stripe collects, and no event reaches us
    try:
        sync(tenant, inv["id"])
        stripe_emulator.wait_for_webhooks(timeout=10)
        deadline = time.monotonic() + 10
        while not collected(stripe_emulator, stripe_key, inv["id"]) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stripe_emulator.configure_webhooks(drop_next=0)
    [row] = ledger_audit.audit_environment(Scope(*tenant))
    assert set(row.problems) == {"unrecorded_at_stripe", "status_mismatch"}, row.as_dict()
    assert row.stripe_net == Decimal(inv["total"]) and row.recorded_stripe_net == 0
    from tools import ledger as ledger_tool

    table = ledger_tool.audit_table([row.as_dict()])
    assert "unrecorded_at_stripe" in table and "1 of 1 invoices disagree with Stripe" in table
