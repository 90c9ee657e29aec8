"""What happens to money and objects after the first payment, as Stripe documents it: refunds (and the card whose
refund fails later), disputes (and test-mode evidence), the always-authenticate card at invoice collection,
Checkout session expiry on the emulator clock, and customer deletion."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import stripe

from stripe_emulator import StripeEmulator
from stripe_emulator.errors import StripeError
from tests.stripe_emulator.conftest import Receiver
from tests.stripe_emulator.test_stripe_emu_invoicing import draft, event_types, wait_status


def until(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.02)
        value = fetch()
    assert done(value), f"condition not reached: {value}"
    return value


def paid_intent(client: stripe.StripeClient, card: str, amount: int = 5000, currency: str = "usd") -> Any:
    customer = client.v1.customers.create()
    return client.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": currency,
            "customer": customer.id,
            "payment_method": card,
            "confirm": True,
        }
    )


def available(client: stripe.StripeClient, currency: str = "usd") -> int:
    balance = client.v1.balance.retrieve()
    return sum(b.amount for b in balance.available if b.currency == currency)


# ------------------------------------------------------------------ refunds


def test_partial_and_full_refunds_of_a_charge(client: stripe.StripeClient) -> None:
    pi = paid_intent(client, "pm_card_visa")
    charge_id = pi.charges.data[0].id
    assert available(client) == 5000
    first = client.v1.refunds.create(params={"charge": charge_id, "amount": 1200, "reason": "requested_by_customer"})
    assert (first.status, first.amount, first.charge, first.payment_intent) == ("succeeded", 1200, charge_id, pi.id)
    charge = client.v1.charges.retrieve(charge_id)
    assert (charge.amount_refunded, charge.refunded) == (1200, False)
    assert [r.id for r in charge.refunds.data] == [first.id]
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 3801})
    assert too_much.value.param == "amount"
    rest = client.v1.refunds.create(params={"payment_intent": pi.id})
    assert rest.amount == 3800
    charge = client.v1.charges.retrieve(charge_id)
    assert (charge.amount_refunded, charge.refunded) == (5000, True)
    with pytest.raises(stripe.InvalidRequestError) as again:
        client.v1.refunds.create(params={"charge": charge_id})
    assert again.value.code == "charge_already_refunded"
    assert [r.id for r in client.v1.refunds.list(params={"charge": charge_id}).data] == [rest.id, first.id]
    listed = client.deserialize(client.raw_request("get", f"/v1/charges/{charge_id}/refunds"), api_mode="V1")
    assert [r.id for r in listed.data] == [rest.id, first.id]
    assert client.v1.refunds.retrieve(first.id).amount == 1200
    assert event_types(client).count("charge.refunded") == 2
    assert available(client) == 0


def test_a_refund_of_the_refund_fail_card_turns_failed_and_the_amount_returns(
    client: stripe.StripeClient, emulator: StripeEmulator, receiver: Receiver
) -> None:
    client.v1.webhook_endpoints.create(params={"url": receiver.url, "enabled_events": ["charge.refund.updated"]})
    pi = paid_intent(client, "pm_card_refundFail")
    refund = client.v1.refunds.create(params={"payment_intent": pi.id, "amount": 2000})
    assert refund.status == "succeeded"
    assert client.v1.charges.retrieve(refund.charge).amount_refunded == 2000
    emulator.advance_clock(emulator.settings.refund_failure_delay)
    failed = until(lambda: client.v1.refunds.retrieve(refund.id), lambda r: r.status == "failed")
    assert failed.failure_reason == "expired_or_canceled_card" and failed.failure_balance_transaction
    charge = client.v1.charges.retrieve(refund.charge)
    assert (charge.amount_refunded, charge.refunded) == (0, False)
    assert available(client) == 5000
    [delivered] = [json.loads(r["body"]) for r in receiver.wait_for(lambda got: len(got) == 1)]
    assert delivered["type"] == "charge.refund.updated"
    assert delivered["data"]["object"]["status"] == "failed"
    assert delivered["data"]["object"]["amount"] == 2000
    assert delivered["data"]["previous_attributes"]["status"] == "succeeded"


def test_refund_rules(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as neither:
        client.v1.refunds.create()
    assert neither.value.code == "parameter_missing"
    kwd = paid_intent(client, "pm_card_visa", amount=20120, currency="kwd")
    with pytest.raises(stripe.InvalidRequestError) as odd:
        client.v1.refunds.create(params={"payment_intent": kwd.id, "amount": 1005})
    assert odd.value.code == "invalid_charge_amount"
    assert client.v1.refunds.create(params={"payment_intent": kwd.id, "amount": 1000}).amount == 1000


# ------------------------------------------------------------------ disputes


def open_dispute(client: stripe.StripeClient) -> tuple[Any, Any]:
    pi = paid_intent(client, "pm_card_createDispute")
    assert pi.status == "succeeded"
    disputes = until(lambda: client.v1.disputes.list(params={"payment_intent": pi.id}).data, lambda d: len(d) == 1)
    return pi, disputes[0]


def test_the_dispute_card_is_disputed_after_it_succeeds_and_funds_are_withdrawn(client: stripe.StripeClient) -> None:
    pi, dispute = open_dispute(client)
    charge = client.v1.charges.retrieve(pi.charges.data[0].id)
    assert charge.disputed is True and charge.status == "succeeded"
    assert (dispute.status, dispute.reason, dispute.amount, dispute.charge) == (
        "needs_response",
        "fraudulent",
        5000,
        charge.id,
    )
    assert [t.amount for t in dispute.balance_transactions] == [-5000]
    assert available(client) == 0
    types = event_types(client)
    assert "charge.dispute.created" in types and "charge.dispute.funds_withdrawn" in types
    with pytest.raises(stripe.InvalidRequestError) as refund:
        client.v1.refunds.create(params={"charge": charge.id})
    assert refund.value.code == "charge_disputed"


@pytest.mark.parametrize(
    ("evidence", "outcome", "balance"), [("winning_evidence", "won", 5000), ("losing_evidence", "lost", 0)]
)
def test_test_mode_evidence_decides_the_dispute(
    client: stripe.StripeClient, evidence: str, outcome: str, balance: int
) -> None:
    _, dispute = open_dispute(client)
    updated = client.v1.disputes.update(dispute.id, params={"evidence": {"uncategorized_text": evidence}})
    assert updated.status == "under_review" and updated.evidence_details.submission_count == 1
    closed = until(lambda: client.v1.disputes.retrieve(dispute.id), lambda d: d.status != "under_review")
    assert closed.status == outcome
    assert available(client) == balance
    types = event_types(client, dispute.id)
    assert types[-1] == "charge.dispute.closed"
    assert ("charge.dispute.funds_reinstated" in types) == (outcome == "won")
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.disputes.close(dispute.id)


def test_closing_a_dispute_accepts_the_loss(client: stripe.StripeClient) -> None:
    _, dispute = open_dispute(client)
    closed = client.v1.disputes.close(dispute.id)
    assert closed.status == "lost"
    assert event_types(client, dispute.id)[-1] == "charge.dispute.closed"
    assert available(client) == 0


# ------------------------------------------------------------------ the always-authenticate card at invoice collection


def test_invoice_collection_with_the_always_authenticate_card_waits_for_the_customer(
    client: stripe.StripeClient, emulator: StripeEmulator, customer_with_card: Callable[[str], Any]
) -> None:
    customer = customer_with_card("pm_card_authenticationRequiredChargeAlways")
    invoice = draft(client, customer.id, [2500])
    client.v1.invoices.finalize_invoice(invoice.id, params={"auto_advance": True})
    waiting = wait_status(client, invoice.id, "open", attempts=1)
    assert waiting.amount_paid == 0 and waiting.hosted_invoice_url
    intent = client.v1.payment_intents.retrieve(waiting.payment_intent)
    assert intent.status == "requires_action" and intent.next_action is not None
    assert intent.last_payment_error.code == "authentication_required"
    [event] = client.v1.events.list(params={"type": "invoice.payment_action_required"}).data
    assert event.data.object.id == invoice.id and event.data.object.hosted_invoice_url == waiting.hosted_invoice_url
    # The customer opens the hosted invoice page and authenticates the same card.
    form = b"card=4000002760003184"
    with urllib.request.urlopen(urllib.request.Request(waiting.hosted_invoice_url, data=form, method="POST")) as page:
        assert page.status == 200
    paid = client.v1.invoices.retrieve(invoice.id)
    assert (paid.status, paid.amount_paid) == ("paid", 2500)
    assert client.v1.payment_intents.retrieve(paid.payment_intent).status == "succeeded"


# ------------------------------------------------------------------ Checkout session expiry


def session(client: stripe.StripeClient) -> Any:
    return client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "success_url": "https://e.com/s",
            "cancel_url": "https://e.com/c",
            "line_items": [
                {
                    "price_data": {"currency": "usd", "unit_amount": 1999, "product_data": {"name": "Plan"}},
                    "quantity": 1,
                }
            ],
        }
    )


def test_a_checkout_session_expires_by_itself_at_expires_at(
    client: stripe.StripeClient, emulator: StripeEmulator
) -> None:
    created = session(client)
    emulator.advance_clock(created.expires_at - emulator.clock.now() + 1)
    until(
        lambda: client.v1.events.list(params={"type": "checkout.session.expired"}).data,
        lambda events: [e.data.object.id for e in events] == [created.id],
    )
    expired = client.v1.checkout.sessions.retrieve(created.id)
    assert (expired.status, expired.url) == ("expired", None)
    assert client.v1.payment_intents.retrieve(expired.payment_intent).status == "canceled"
    with pytest.raises(StripeError, match="expired"):
        emulator.complete_checkout_session(created.id)
    page = urllib.request.Request(f"{emulator.url}/checkout/{created.id}", data=b"card=4242424242424242", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(page)
    assert refused.value.code == 400


def test_an_expired_session_cannot_be_completed(client: stripe.StripeClient, emulator: StripeEmulator) -> None:
    created = session(client)
    client.v1.checkout.sessions.expire(created.id)
    with pytest.raises(StripeError, match="expired"):
        emulator.complete_checkout_session(created.id)
    assert client.v1.checkout.sessions.retrieve(created.id).payment_status == "unpaid"


# ------------------------------------------------------------------ customer deletion


def test_a_deleted_customer_is_gone_for_every_later_use(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"email": "gone@example.com"})
    invoice = client.v1.invoices.create(params={"customer": customer.id})
    deleted = client.v1.customers.delete(customer.id)
    assert (deleted.id, deleted.deleted) == (customer.id, True)
    assert client.v1.customers.retrieve(customer.id).deleted is True
    [event] = client.v1.events.list(params={"type": "customer.deleted"}).data
    assert event.data.object.id == customer.id and event.data.object.email == "gone@example.com"
    for create in (
        lambda: client.v1.invoices.create(params={"customer": customer.id}),
        lambda: client.v1.invoice_items.create(params={"customer": customer.id, "amount": 100, "currency": "usd"}),
        lambda: client.v1.payment_intents.create(params={"amount": 100, "currency": "usd", "customer": customer.id}),
        lambda: client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id}),
        lambda: client.v1.customers.update(customer.id, params={"name": "x"}),
        lambda: client.v1.invoices.finalize_invoice(invoice.id),
    ):
        with pytest.raises(stripe.InvalidRequestError) as refused:
            create()
        assert refused.value.code == "resource_missing"
    assert customer.id not in [c.id for c in client.v1.customers.list().data]
