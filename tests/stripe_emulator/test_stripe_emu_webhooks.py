"""Webhook delivery: Stripe's signature verified by the SDK, retries with backoff, duplicates, reordering, drops."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import stripe

from stripe_emulator import StripeEmulator
from tests.stripe_emulator.conftest import Receiver


def endpoint(client: stripe.StripeClient, receiver: Receiver, events: list[str]) -> str:
    created = client.v1.webhook_endpoints.create(params={"url": receiver.url, "enabled_events": events})
    return created.secret


def test_events_are_delivered_signed_and_verify_with_the_sdk(
    client: stripe.StripeClient, receiver: Receiver, customer_with_card: Callable[[str], Any]
) -> None:
    secret = endpoint(client, receiver, ["invoice.paid", "invoice.finalized", "payment_intent.succeeded"])
    customer = customer_with_card("pm_card_visa")
    invoice = client.v1.invoices.create(params={"customer": customer.id})
    client.v1.invoice_items.create(
        params={"customer": customer.id, "invoice": invoice.id, "amount": 4200, "currency": "usd"}
    )
    client.v1.invoices.finalize_invoice(invoice.id, params={"auto_advance": True})
    received = receiver.wait_for(lambda r: len(r) >= 3)
    types = []
    for delivery in received:
        event = stripe.Webhook.construct_event(delivery["body"], delivery["signature"], secret)
        types.append(event.type)
        assert event.api_version == "2020-08-27"
    assert sorted(types) == ["invoice.finalized", "invoice.paid", "payment_intent.succeeded"]
    paid = next(json.loads(d["body"]) for d in received if json.loads(d["body"])["type"] == "invoice.paid")
    assert paid["data"]["object"]["id"] == invoice.id and paid["data"]["object"]["amount_paid"] == 4200
    # customer.created was not subscribed to and was not sent
    assert "customer.created" not in types

    tampered = received[0]["body"].replace("2020-08-27", "2099-01-01")
    try:
        stripe.Webhook.construct_event(tampered, received[0]["signature"], secret)
        raise AssertionError("a tampered payload must not verify")
    except stripe.SignatureVerificationError:
        pass


def test_a_failing_receiver_is_retried_with_backoff(
    client: stripe.StripeClient, emulator: StripeEmulator, receiver: Receiver
) -> None:
    secret = endpoint(client, receiver, ["customer.created"])
    receiver.statuses = [500, 503]
    customer = client.v1.customers.create()
    received = receiver.wait_for(lambda r: len(r) >= 3)
    assert [d["status"] for d in received] == [500, 503, 200]
    for delivery in received:
        assert (
            stripe.Webhook.construct_event(delivery["body"], delivery["signature"], secret).data.object.id
            == customer.id
        )
    assert emulator.wait_for_webhooks()
    record = next(
        d for d in emulator.webhook_deliveries() if d["event_type"] == "customer.created" and d["url"] == receiver.url
    )
    assert record["status"] == "delivered" and [a["status"] for a in record["attempts"]] == [500, 503, 200]
    event = client.v1.events.list(params={"type": "customer.created"}).data[0]
    assert event.pending_webhooks == 0


def test_retries_wait_for_the_clock_and_give_up_after_max_attempts(
    client: stripe.StripeClient, emulator: StripeEmulator, receiver: Receiver
) -> None:
    emulator.configure_webhooks(retry_base=3600.0)
    try:
        endpoint(client, receiver, ["product.created"])
        receiver.statuses = [500] * 10
        client.v1.products.create(params={"name": "p"})

        def attempts(n: int) -> None:
            receiver.wait_for(lambda r: len(r) == n)
            deadline = time.monotonic() + 5  # the emulator records the answer after the receiver sent it
            while time.monotonic() < deadline:
                records = [d for d in emulator.webhook_deliveries() if d["url"] == receiver.url]
                if records and len(records[0]["attempts"]) == n:
                    return
                time.sleep(0.01)
            raise AssertionError("attempt not recorded")

        attempts(1)
        time.sleep(0.3)
        assert len(receiver.received) == 1  # next attempt is an hour away
        emulator.advance_clock(3600)
        attempts(2)
        emulator.advance_clock(2 * 3600)
        attempts(3)
        emulator.advance_clock(4 * 3600)
        attempts(4)
        emulator.advance_clock(100 * 3600)
        time.sleep(0.3)
        assert len(receiver.received) == 4  # max_attempts is 4 in these tests
        assert emulator.wait_for_webhooks()
        record = next(d for d in emulator.webhook_deliveries() if d["url"] == receiver.url)
        assert record["status"] == "failed"
    finally:
        emulator.configure_webhooks(retry_base=0.2)


def test_duplicates_and_shuffled_order(
    client: stripe.StripeClient, emulator: StripeEmulator, receiver: Receiver
) -> None:
    secret = endpoint(client, receiver, ["customer.created"])
    emulator.configure_webhooks(duplicate=True, shuffle=True, shuffle_window=0.3)
    try:
        ids = [client.v1.customers.create(params={"name": str(i)}).id for i in range(12)]
        received = receiver.wait_for(lambda r: len(r) >= 24)
    finally:
        emulator.configure_webhooks(duplicate=False)
    delivered = [stripe.Webhook.construct_event(d["body"], d["signature"], secret).data.object.id for d in received]
    assert sorted(delivered) == sorted(ids * 2)  # every event exactly twice
    firsts = list(dict.fromkeys(delivered))
    assert firsts != ids  # out of creation order (12! orderings; the odds of creation order are negligible)


def test_dropped_events_are_never_delivered_but_stay_listable(
    client: stripe.StripeClient, emulator: StripeEmulator, receiver: Receiver
) -> None:
    endpoint(client, receiver, ["customer.created"])
    emulator.configure_webhooks(drop_next=1)
    lost = client.v1.customers.create(params={"name": "lost"})
    kept = client.v1.customers.create(params={"name": "kept"})
    received = receiver.wait_for(lambda r: len(r) >= 1)
    assert emulator.wait_for_webhooks()
    assert [json.loads(d["body"])["data"]["object"]["id"] for d in received] == [kept.id]
    listed = [e.data.object.id for e in client.v1.events.list(params={"type": "customer.created"}).data]
    assert lost.id in listed  # reconciliation can still find it
    assert any(d["status"] == "dropped" for d in emulator.webhook_deliveries())


def test_deliveries_are_unordered_by_default_and_ordered_on_request(
    client: stripe.StripeClient, emulator: StripeEmulator, receiver: Receiver
) -> None:
    endpoint(client, receiver, ["customer.created"])
    assert emulator.configure_webhooks()["shuffle"] is True  # the default, as Stripe does not guarantee order
    burst = [client.v1.customers.create(params={"name": str(i)}).id for i in range(12)]
    received = receiver.wait_for(lambda r: len(r) >= 12)
    arrived = [json.loads(d["body"])["data"]["object"]["id"] for d in received]
    assert sorted(arrived) == sorted(burst) and arrived != burst

    emulator.configure_webhooks(shuffle=False)
    try:
        ordered = [client.v1.customers.create(params={"name": f"o{i}"}).id for i in range(12)]
        received = receiver.wait_for(lambda r: len(r) >= 24)
    finally:
        emulator.configure_webhooks(shuffle=True)
    assert [json.loads(d["body"])["data"]["object"]["id"] for d in received[12:]] == ordered
