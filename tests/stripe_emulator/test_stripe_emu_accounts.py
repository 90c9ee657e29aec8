"""Keys and accounts: idempotency keys live 24 hours on the emulator's clock, keys can be expired or revoked,
`GET /v1/balance` answers a valid key with its mode; and the invoice, line, item, event and customer endpoints the
product relies on behave as Stripe documents them."""

from __future__ import annotations

import json
import urllib.request
import uuid
from typing import Any

import pytest
import stripe

from stripe_emulator import StripeEmulator
from tests.stripe_emulator.test_stripe_emu_invoicing import draft, event_types

DAY = 24 * 3600


def helper(emulator: StripeEmulator, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{emulator.url}/_emulator{path}", data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


# ------------------------------------------------------------------ idempotency keys


def test_an_idempotency_key_is_live_for_24_hours_of_the_emulator_clock(
    client: stripe.StripeClient, emulator: StripeEmulator
) -> None:
    first = client.v1.customers.create(params={"name": "Ada"}, options={"idempotency_key": "sync-cust-1"})
    emulator.advance_clock(DAY - 60)
    replay = client.v1.customers.create(params={"name": "Ada"}, options={"idempotency_key": "sync-cust-1"})
    assert replay.id == first.id
    with pytest.raises(stripe.IdempotencyError) as changed:
        client.v1.customers.create(params={"name": "Ada L."}, options={"idempotency_key": "sync-cust-1"})
    assert changed.value.http_status == 400 and changed.value.error.type == "idempotency_error"
    emulator.advance_clock(120)
    fresh = client.v1.customers.create(params={"name": "Ada L."}, options={"idempotency_key": "sync-cust-1"})
    assert fresh.id != first.id and fresh.name == "Ada L."
    with pytest.raises(stripe.IdempotencyError):  # the key now belongs to the second request and its parameters
        client.v1.customers.create(params={"name": "Ada"}, options={"idempotency_key": "sync-cust-1"})


# ------------------------------------------------------------------ API keys


@pytest.mark.parametrize(
    ("key_state", "code", "message"),
    [("expired", "api_key_expired", "Expired API Key"), ("revoked", None, "Invalid API Key")],
)
def test_an_expired_or_revoked_key_is_refused_on_every_call(
    emulator: StripeEmulator, key_state: str, code: str | None, message: str
) -> None:
    key = f"sk_test_{uuid.uuid4().hex}"
    client = stripe.StripeClient(key, base_addresses={"api": emulator.url}, max_network_retries=0)
    customer = client.v1.customers.create()
    assert helper(emulator, "POST", "/keys", {"key": key, "state": key_state})["state"] == key_state
    assert {"key": key[:8] + "****" + key[-4:], "state": key_state} in helper(emulator, "GET", "/keys")
    for call in (
        client.v1.balance.retrieve,
        lambda: client.v1.customers.retrieve(customer.id),
        lambda: client.v1.customers.create(params={"name": "x"}),
        lambda: client.v1.events.list(),
    ):
        with pytest.raises(stripe.AuthenticationError) as refused:
            call()
        assert refused.value.http_status == 401 and refused.value.error.code == code
        assert message in str(refused.value.user_message) and key not in str(refused.value.user_message)
    helper(emulator, "POST", "/keys", {"key": key, "state": "active"})
    assert client.v1.customers.retrieve(customer.id).id == customer.id


def test_balance_answers_a_valid_key_with_its_mode(emulator: StripeEmulator) -> None:
    test = stripe.StripeClient(f"sk_test_{uuid.uuid4().hex}", base_addresses={"api": emulator.url})
    balance = test.v1.balance.retrieve()
    assert balance.object == "balance" and balance.livemode is False
    assert [(b.amount, b.currency) for b in balance.available] == [(0, "usd")]
    live = stripe.StripeClient(f"sk_live_{uuid.uuid4().hex}", base_addresses={"api": emulator.url})
    assert live.v1.balance.retrieve().livemode is True
    customer = live.v1.customers.create()
    assert customer.livemode is True
    assert live.v1.events.list().data[0].livemode is True
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient("sk_nope", base_addresses={"api": emulator.url}).v1.balance.retrieve()


# ------------------------------------------------------------------ endpoints the product relies on


def test_pay_out_of_band_void_delete_and_uncollectible_follow_the_invoice_state_machine(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create()
    oob = client.v1.invoices.finalize_invoice(draft(client, customer.id, [1999]).id)
    paid = client.v1.invoices.pay(oob.id, params={"paid_out_of_band": True})
    assert (paid.status, paid.amount_paid, paid.paid_out_of_band, paid.paid) == ("paid", 0, True, True)
    types = event_types(client, oob.id)
    assert "invoice.paid" in types and "invoice.payment_succeeded" not in types
    for act in (lambda: client.v1.invoices.void_invoice(oob.id), lambda: client.v1.invoices.delete(oob.id)):
        with pytest.raises(stripe.InvalidRequestError):
            act()

    drafted = draft(client, customer.id, [500])
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.void_invoice(drafted.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.mark_uncollectible(drafted.id)
    assert client.v1.invoices.delete(drafted.id).deleted is True

    opened = client.v1.invoices.finalize_invoice(draft(client, customer.id, [700]).id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.delete(opened.id)
    voided = client.v1.invoices.void_invoice(opened.id)
    assert voided.status == "void" and "invoice.voided" in event_types(client, opened.id)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.pay(opened.id, params={"paid_out_of_band": True})

    bad = client.v1.invoices.finalize_invoice(draft(client, customer.id, [900]).id)
    assert client.v1.invoices.mark_uncollectible(bad.id).status == "uncollectible"
    assert "invoice.marked_uncollectible" in event_types(client, bad.id)


def test_invoice_lines_and_items_by_invoice_page(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    invoice = draft(client, customer.id, list(range(100, 2600, 100)))
    other = draft(client, customer.id, [42])
    lines = client.v1.invoices.line_items.list(invoice.id, params={"limit": 10})
    assert len(lines.data) == 10 and lines.has_more
    everything = [line.amount for line in lines.auto_paging_iter()]
    assert everything == list(range(100, 2600, 100))
    items = client.v1.invoice_items.list(params={"invoice": invoice.id, "limit": 100}).data
    assert sorted(i.amount for i in items) == everything
    assert [i.amount for i in client.v1.invoice_items.list(params={"invoice": other.id}).data] == [42]


def test_customers_update(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": "old@example.com", "name": "Old"})
    updated = client.v1.customers.update(
        customer.id, params={"email": "new@example.com", "name": "New", "metadata": {"k": "v"}}
    )
    assert (updated.email, updated.name, updated.metadata["k"]) == ("new@example.com", "New", "v")
    [event] = client.v1.events.list(params={"type": "customer.updated"}).data
    assert event.data.previous_attributes["email"] == "old@example.com"


def test_events_page_both_ways_over_more_than_1000_events(
    client: stripe.StripeClient, emulator: StripeEmulator
) -> None:
    customer = client.v1.customers.create()
    emulator.record_requests = False  # 1,006 updates shaped like those validated elsewhere; the listing is validated
    try:
        for n in range(1006):
            client.v1.customers.update(customer.id, params={"metadata": {"n": str(n)}})
    finally:
        emulator.record_requests = True
    newest_first = [e.id for e in client.v1.events.list(params={"limit": 100}).auto_paging_iter()]
    assert len(newest_first) == 1007 and len(set(newest_first)) == 1007
    # From the oldest towards the newest, as a reconciliation resuming from a cursor does.
    oldest_first: list[str] = []
    cursor = newest_first[-1]
    while True:
        page = client.v1.events.list(params={"limit": 100, "ending_before": cursor})
        oldest_first += [e.id for e in reversed(page.data)]
        if not page.has_more:
            break
        cursor = page.data[0].id
    assert oldest_first == list(reversed(newest_first))[1:]


def test_timing_settings_are_controlled_over_http(emulator: StripeEmulator) -> None:
    before = helper(emulator, "GET", "/settings")
    try:
        changed = helper(emulator, "POST", "/settings", {"refund_failure_delay": 30, "dispute_delay": 5})
        assert (changed["refund_failure_delay"], changed["dispute_delay"]) == (30.0, 5.0)
        assert emulator.settings.refund_failure_delay == 30.0
        with pytest.raises(urllib.error.HTTPError) as unknown:
            helper(emulator, "POST", "/settings", {"nope": 1})
        assert unknown.value.code == 400
    finally:
        emulator.configure(**before)
