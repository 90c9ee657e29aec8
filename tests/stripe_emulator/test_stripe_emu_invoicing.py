"""Invoices: totals from items in minor units, finalize/send/pay/void/uncollectible, automatic collection with the
three cards, retries on the emulator clock, and the send_invoice flow through the hosted page."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import stripe

from stripe_emulator import StripeEmulator


def wait_status(client: stripe.StripeClient, invoice_id: str, status: str, attempts: int | None = None) -> Any:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        invoice = client.v1.invoices.retrieve(invoice_id)
        if invoice.status == status and (attempts is None or invoice.attempt_count == attempts):
            return invoice
        time.sleep(0.02)
    raise AssertionError(f"invoice {invoice_id} is {invoice.status} after {invoice.attempt_count} attempts")


def event_types(client: stripe.StripeClient, object_id: str | None = None) -> list[str]:
    events = client.v1.events.list(params={"limit": 100}).data
    return [e.type for e in reversed(events) if object_id is None or e.data.object.id == object_id]


def draft(client: stripe.StripeClient, customer: str, amounts: list[int], currency: str = "usd", **params: Any) -> Any:
    invoice = client.v1.invoices.create(params={"customer": customer, "currency": currency, **params})
    for i, amount in enumerate(amounts):
        client.v1.invoice_items.create(
            params={
                "customer": customer,
                "invoice": invoice.id,
                "amount": amount,
                "currency": currency,
                "description": f"line {i}",
                "metadata": {"line_id": f"ln_{i}"},
            }
        )
    return client.v1.invoices.retrieve(invoice.id)


@pytest.mark.parametrize(
    ("currency", "items", "total"),
    [
        ("usd", [{"amount": 1050}, {"unit_amount_decimal": "12.5", "quantity": 3}, {"amount": -300}], 1050 + 38 - 300),
        ("jpy", [{"amount": 1500}, {"unit_amount": 120, "quantity": 7}], 1500 + 840),
        ("kwd", [{"amount": 12345}, {"unit_amount_decimal": "0.4", "quantity": 10}], 12345 + 4),
    ],
)
def test_totals_are_the_sum_of_items_in_minor_units(
    client: stripe.StripeClient, currency: str, items: list[dict[str, Any]], total: int
) -> None:
    customer = client.v1.customers.create()
    invoice = client.v1.invoices.create(params={"customer": customer.id, "currency": currency})
    for item in items:
        created = client.v1.invoice_items.create(
            params={"customer": customer.id, "invoice": invoice.id, "currency": currency, **item}
        )
        assert isinstance(created.amount, int)
    invoice = client.v1.invoices.retrieve(invoice.id)
    assert (invoice.subtotal, invoice.total, invoice.amount_due) == (total, total, total)
    assert [line.amount for line in invoice.lines.data] == [
        client.v1.invoice_items.retrieve(line.invoice_item).amount for line in invoice.lines.data
    ]
    listed = client.v1.invoice_items.list(params={"invoice": invoice.id})
    assert len(listed.data) == len(items)


def test_invoice_items_rules(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    invoice = draft(client, customer.id, [100])
    with pytest.raises(stripe.InvalidRequestError) as currency:
        client.v1.invoice_items.create(
            params={"customer": customer.id, "invoice": invoice.id, "amount": 5, "currency": "eur"}
        )
    assert currency.value.param == "currency"
    pending = client.v1.invoice_items.create(params={"customer": customer.id, "amount": 7, "currency": "usd"})
    assert pending.invoice is None
    assert [i.id for i in client.v1.invoice_items.list(params={"customer": customer.id, "pending": True}).data] == [
        pending.id
    ]
    item = client.v1.invoice_items.list(params={"invoice": invoice.id}).data[0]
    client.v1.invoice_items.update(item.id, params={"amount": 250})
    assert client.v1.invoices.retrieve(invoice.id).total == 250
    client.v1.invoices.finalize_invoice(invoice.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoice_items.create(
            params={"customer": customer.id, "invoice": invoice.id, "amount": 1, "currency": "usd"}
        )
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoice_items.update(item.id, params={"amount": 1})


def test_charge_automatically_success(client: stripe.StripeClient, customer_with_card: Callable[[str], Any]) -> None:
    customer = customer_with_card("pm_card_visa")
    invoice = draft(client, customer.id, [1000, 234], metadata={"our_invoice_id": "inv_1"})
    assert invoice.status == "draft" and invoice.number is None
    finalized = client.v1.invoices.finalize_invoice(invoice.id, params={"auto_advance": True})
    assert finalized.status == "open" and finalized.number.endswith("-0001")
    assert finalized.hosted_invoice_url and finalized.invoice_pdf
    paid = wait_status(client, invoice.id, "paid")
    assert (paid.amount_paid, paid.amount_remaining, paid.paid) == (1234, 0, True)
    assert paid.status_transitions.paid_at is not None and paid.charge.startswith("ch_")
    intent = client.v1.payment_intents.retrieve(paid.payment_intent)
    assert intent.status == "succeeded" and intent.amount_received == 1234 and intent.invoice == invoice.id
    types = event_types(client)
    for expected in ("invoice.finalized", "invoice.paid", "invoice.payment_succeeded", "payment_intent.succeeded"):
        assert expected in types
    assert types.index("invoice.finalized") < types.index("invoice.paid")
    listed = client.v1.invoices.list(params={"customer": customer.id, "status": "paid"})
    assert [i.id for i in listed.data] == [invoice.id]


def test_charge_automatically_decline_then_retry_succeeds_later(
    client: stripe.StripeClient, emulator: StripeEmulator, customer_with_card: Callable[[str], Any]
) -> None:
    customer = customer_with_card("pm_card_chargeDeclined")
    invoice = draft(client, customer.id, [5000])
    client.v1.invoices.finalize_invoice(invoice.id, params={"auto_advance": True})
    failed = wait_status(client, invoice.id, "open", attempts=1)
    assert failed.attempted and failed.next_payment_attempt is not None
    assert failed.next_payment_attempt >= int(emulator.clock.now()) + 3 * 86400 - 5
    intent = client.v1.payment_intents.retrieve(failed.payment_intent)
    assert intent.status == "requires_payment_method" and intent.last_payment_error.code == "card_declined"
    types = event_types(client)
    assert "invoice.payment_failed" in types and "payment_intent.payment_failed" in types
    assert "invoice.paid" not in types

    # The customer fixes their card; Stripe's next automatic attempt (three days later) succeeds.
    good = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": good.id}})
    emulator.advance_clock(3 * 86400 + 1)
    paid = wait_status(client, invoice.id, "paid")
    assert paid.attempt_count == 2 and paid.amount_paid == 5000


def test_charge_automatically_requires_authentication(
    client: stripe.StripeClient, customer_with_card: Callable[[str], Any]
) -> None:
    customer = customer_with_card("pm_card_authenticationRequired")
    invoice = draft(client, customer.id, [700])
    client.v1.invoices.finalize_invoice(invoice.id, params={"auto_advance": True})
    wait_status(client, invoice.id, "open", attempts=1)
    intent = client.v1.payment_intents.retrieve(client.v1.invoices.retrieve(invoice.id).payment_intent)
    assert intent.last_payment_error.code == "authentication_required"
    types = event_types(client)
    assert "invoice.payment_action_required" in types and "invoice.payment_failed" in types


def test_no_default_payment_method_leaves_the_invoice_open_with_a_failure_event(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    invoice = draft(client, customer.id, [900])
    client.v1.invoices.finalize_invoice(invoice.id, params={"auto_advance": True})
    failed = wait_status(client, invoice.id, "open", attempts=1)
    event = client.v1.events.list(params={"type": "invoice.payment_failed"}).data[0]
    assert event.data.object.id == invoice.id
    intent = client.v1.payment_intents.retrieve(failed.payment_intent)
    assert "no attached payment source or default payment method" in intent.last_payment_error.message
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.pay(invoice.id)


def test_pay_void_and_uncollectible(client: stripe.StripeClient, customer_with_card: Callable[[str], Any]) -> None:
    customer = customer_with_card("pm_card_chargeDeclined")
    invoice = draft(client, customer.id, [100])
    client.v1.invoices.finalize_invoice(invoice.id, params={"auto_advance": False})
    with pytest.raises(stripe.CardError) as declined:
        client.v1.invoices.pay(invoice.id)
    assert declined.value.code == "card_declined" and declined.value.http_status == 402
    assert client.v1.invoices.retrieve(invoice.id).attempt_count == 1
    paid = client.v1.invoices.pay(invoice.id, params={"payment_method": "pm_card_visa"})
    assert paid.status == "paid" and paid.amount_paid == 100

    second = draft(client, customer.id, [200])
    client.v1.invoices.finalize_invoice(second.id)
    assert client.v1.invoices.mark_uncollectible(second.id).status == "uncollectible"
    voided = client.v1.invoices.void_invoice(second.id)
    assert voided.status == "void" and voided.status_transitions.voided_at is not None
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.void_invoice(second.id)

    third = draft(client, customer.id, [300])
    out_of_band = client.v1.invoices.pay(third.id, params={"paid_out_of_band": True})
    assert out_of_band.status == "paid" and out_of_band.paid_out_of_band
    types = event_types(client)
    assert {"invoice.voided", "invoice.marked_uncollectible"} <= set(types)


def test_update_and_delete_draft(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    invoice = draft(client, customer.id, [100])
    updated = client.v1.invoices.update(invoice.id, params={"description": "September", "metadata": {"k": "v"}})
    assert updated.description == "September" and updated.metadata.k == "v"
    assert client.v1.invoices.delete(invoice.id).deleted is True
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.retrieve(invoice.id)
    zero = client.v1.invoices.create(params={"customer": customer.id})
    assert client.v1.invoices.finalize_invoice(zero.id).status == "paid"  # nothing to pay


def test_send_invoice_flow_with_hosted_page_and_pdf(client: stripe.StripeClient, emulator: StripeEmulator) -> None:
    customer = client.v1.customers.create(params={"email": "ap@example.com"})
    with pytest.raises(stripe.InvalidRequestError) as no_due:
        client.v1.invoices.create(params={"customer": customer.id, "collection_method": "send_invoice"})
    assert no_due.value.param == "days_until_due"
    invoice = draft(client, customer.id, [123456], currency="jpy", collection_method="send_invoice", days_until_due=30)
    assert invoice.due_date == invoice.created + 30 * 86400
    finalized = client.v1.invoices.finalize_invoice(invoice.id, params={"auto_advance": False})
    sent = client.v1.invoices.send_invoice(invoice.id)
    assert sent.status == "open" and sent.collection_method == "send_invoice"
    assert sent.hosted_invoice_url.startswith(emulator.url) and sent.invoice_pdf.startswith(emulator.url)
    with urllib.request.urlopen(finalized.hosted_invoice_url) as page:
        html = page.read().decode()
    assert "123,456 JPY" in html and finalized.number in html
    with urllib.request.urlopen(finalized.invoice_pdf) as pdf:
        assert pdf.headers["Content-Type"] == "application/pdf"
        content = pdf.read()
    assert content.startswith(b"%PDF-1.4") and b"123,456 JPY" in content and content.rstrip().endswith(b"%%EOF")
    time.sleep(0.1)
    assert client.v1.invoices.retrieve(invoice.id).status == "open"  # never charged automatically

    helper = urllib.request.Request(
        f"{emulator.url}/_emulator/invoices/{invoice.id}/pay",
        data=b'{"card": "4000000000000002"}',
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as declined:
        urllib.request.urlopen(helper)
    assert declined.value.code == 402
    assert json.loads(declined.value.read())["error"]["code"] == "card_declined"
    paid = emulator.pay_hosted_invoice(invoice.id, card="4242424242424242")
    assert paid["status"] == "paid" and paid["amount_paid"] == 123456
    types = event_types(client)
    assert {"invoice.sent", "invoice.paid", "invoice.payment_succeeded"} <= set(types)
