"""Money rules Stripe applies that an integration must not be able to ignore: the invoice's currency, the customer
balance, minimum charge amounts and three-decimal currencies (docs/stripe-emulator.md cites each rule)."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from tests.stripe_emulator.test_stripe_emu_invoicing import event_types, wait_status


def draft(client: stripe.StripeClient, customer: str, amount: int, currency: str | None = None) -> Any:
    params: dict[str, Any] = {"customer": customer}
    if currency is not None:
        params["currency"] = currency
    invoice = client.v1.invoices.create(params=params)
    client.v1.invoice_items.create(params={"customer": customer, "invoice": invoice.id, "amount": amount})
    return client.v1.invoices.retrieve(invoice.id)


# ------------------------------------------------------------------ 1. invoice currency


def test_a_new_customers_invoice_is_in_the_account_default_currency_unless_given(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    invoice = client.v1.invoices.create(params={"customer": customer.id})
    assert invoice.currency == "usd"
    with pytest.raises(stripe.InvalidRequestError) as wrong:
        client.v1.invoice_items.create(
            params={"customer": customer.id, "invoice": invoice.id, "amount": 500, "currency": "eur"}
        )
    assert wrong.value.http_status == 400
    assert "must match" in str(wrong.value.user_message)
    assert client.v1.invoices.retrieve(invoice.id).total == 0

    eur = client.v1.invoices.create(params={"customer": customer.id, "currency": "eur"})
    item = client.v1.invoice_items.create(params={"customer": customer.id, "invoice": eur.id, "amount": 500})
    assert (eur.currency, item.currency) == ("eur", "eur")


def test_the_first_finalized_invoice_sets_the_customers_currency_and_later_invoices_default_to_it(
    client: stripe.StripeClient,
) -> None:
    customer = client.v1.customers.create()
    assert customer.currency is None
    first = draft(client, customer.id, 1000, "eur")
    assert client.v1.customers.retrieve(customer.id).currency is None
    client.v1.invoices.finalize_invoice(first.id)
    assert client.v1.customers.retrieve(customer.id).currency == "eur"
    assert client.v1.invoices.create(params={"customer": customer.id}).currency == "eur"
    # A multi-currency customer: an explicit currency still wins.
    usd = draft(client, customer.id, 1000, "usd")
    assert (usd.currency, usd.total) == ("usd", 1000)


def test_pending_items_in_another_currency_stay_pending(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    client.v1.invoice_items.create(params={"customer": customer.id, "amount": 700, "currency": "usd"})
    gbp = client.v1.invoice_items.create(params={"customer": customer.id, "amount": 300, "currency": "gbp"})
    invoice = client.v1.invoices.create(params={"customer": customer.id, "pending_invoice_items_behavior": "include"})
    assert (invoice.currency, invoice.total) == ("usd", 700)
    assert client.v1.invoice_items.retrieve(gbp.id).invoice is None


# ------------------------------------------------------------------ 2. customer balance


def test_a_credit_balance_reduces_amount_due_at_finalization(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create(params={"balance": -300})
    invoice = draft(client, customer.id, 1000, "usd")
    assert (invoice.starting_balance, invoice.amount_due, invoice.ending_balance) == (-300, 700, None)
    invoice = client.v1.invoices.finalize_invoice(invoice.id)
    assert (invoice.total, invoice.starting_balance, invoice.amount_due, invoice.ending_balance) == (1000, -300, 700, 0)
    assert client.v1.customers.retrieve(customer.id).balance == 0
    ledger = client.v1.customers.balance_transactions.list(customer.id).data
    assert [(t.type, t.amount, t.ending_balance) for t in ledger] == [
        ("applied_to_invoice", 300, 0),
        ("initial", -300, -300),
    ]
    assert ledger[0].invoice == invoice.id


def test_a_credit_larger_than_the_invoice_pays_it_and_the_rest_stays(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    client.v1.customers.balance_transactions.create(customer.id, params={"amount": -2500, "currency": "usd"})
    invoice = client.v1.invoices.finalize_invoice(draft(client, customer.id, 1000, "usd").id)
    assert (invoice.status, invoice.amount_due, invoice.amount_paid, invoice.ending_balance) == ("paid", 0, 0, -1500)
    assert client.v1.customers.retrieve(customer.id).balance == -1500


def test_a_debit_balance_increases_amount_due(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    client.v1.customers.update(customer.id, params={"balance": 250})
    invoice = client.v1.invoices.finalize_invoice(draft(client, customer.id, 1000, "usd").id)
    assert (invoice.starting_balance, invoice.amount_due, invoice.amount_remaining) == (250, 1250, 1250)
    assert client.v1.customers.retrieve(customer.id).balance == 0
    assert client.v1.payment_intents.retrieve(invoice.payment_intent).amount == 1250


def test_a_balance_in_another_currency_is_not_applied(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    client.v1.customers.balance_transactions.create(customer.id, params={"amount": -500, "currency": "eur"})
    assert client.v1.customers.retrieve(customer.id).currency == "eur"
    invoice = client.v1.invoices.finalize_invoice(draft(client, customer.id, 1000, "usd").id)
    assert (invoice.starting_balance, invoice.amount_due) == (0, 1000)
    assert client.v1.customers.retrieve(customer.id).balance == -500


# ------------------------------------------------------------------ 3. minimum charge amounts


@pytest.mark.parametrize(("currency", "amount"), [("usd", 49), ("gbp", 29), ("jpy", 49), ("eur", 1)])
def test_an_invoice_below_the_minimum_is_paid_with_nothing_collected_and_carried_to_the_balance(
    client: stripe.StripeClient, currency: str, amount: int
) -> None:
    customer = client.v1.customers.create()
    pm = client.v1.payment_methods.attach("pm_card_visa", params={"customer": customer.id})
    client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": pm.id}})
    invoice = draft(client, customer.id, amount, currency)
    invoice = client.v1.invoices.finalize_invoice(invoice.id, params={"auto_advance": True})
    assert (invoice.status, invoice.amount_due, invoice.amount_paid, invoice.amount_remaining) == (
        "paid",
        amount,
        0,
        0,
    )
    assert invoice.paid_out_of_band is False
    assert invoice.charge is None and invoice.payment_intent is None
    assert invoice.ending_balance == amount
    assert client.v1.customers.retrieve(customer.id).balance == amount
    ledger = client.v1.customers.balance_transactions.list(customer.id).data
    assert [(t.type, t.amount) for t in ledger] == [("invoice_too_small", amount)]
    types = event_types(client, invoice.id)
    assert "invoice.paid" in types and "invoice.payment_succeeded" not in types
    assert client.v1.charges.list(params={"customer": customer.id}).data == []

    # The carried debit is collected with the next invoice.
    nxt = client.v1.invoices.finalize_invoice(draft(client, customer.id, 5000, currency).id)
    assert (nxt.starting_balance, nxt.amount_due) == (amount, 5000 + amount)
    assert client.v1.customers.retrieve(customer.id).balance == 0


def test_an_invoice_at_the_minimum_is_charged(client: stripe.StripeClient, customer_with_card: Any) -> None:
    customer = customer_with_card("pm_card_visa")
    invoice = draft(client, customer.id, 50, "usd")
    invoice = client.v1.invoices.finalize_invoice(invoice.id, params={"auto_advance": True})
    paid = wait_status(client, invoice.id, "paid")
    assert paid.amount_paid == 50 and paid.charge is not None


@pytest.mark.parametrize(("currency", "amount", "message"), [("usd", 49, "$0.50 usd"), ("gbp", 29, "£0.30 gbp")])
def test_a_payment_intent_below_the_minimum_is_refused(
    client: stripe.StripeClient, currency: str, amount: int, message: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as small:
        client.v1.payment_intents.create(params={"amount": amount, "currency": currency})
    assert small.value.code == "amount_too_small" and small.value.param == "amount"
    assert message in str(small.value.user_message)
    assert client.v1.payment_intents.create(params={"amount": amount + 1, "currency": currency}).amount == amount + 1


# ------------------------------------------------------------------ 4. three-decimal currencies


@pytest.mark.parametrize("currency", ["bhd", "jod", "kwd", "omr", "tnd"])
def test_three_decimal_payment_intents_must_end_in_zero(client: stripe.StripeClient, currency: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as odd:
        client.v1.payment_intents.create(params={"amount": 20125, "currency": currency})
    assert odd.value.http_status == 400
    assert odd.value.code == "invalid_charge_amount" and odd.value.param == "amount"
    pi = client.v1.payment_intents.create(
        params={"amount": 20120, "currency": currency, "payment_method": "pm_card_visa", "confirm": True}
    )
    assert (pi.status, pi.amount_received) == ("succeeded", 20120)


def test_a_three_decimal_invoice_not_ending_in_zero_cannot_be_collected(
    client: stripe.StripeClient, customer_with_card: Any
) -> None:
    customer = customer_with_card("pm_card_visa")
    odd = client.v1.invoices.finalize_invoice(draft(client, customer.id, 20125, "kwd").id)
    assert (odd.status, odd.amount_due) == ("open", 20125)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.invoices.pay(odd.id)
    assert refused.value.code == "invalid_charge_amount"
    odd = client.v1.invoices.retrieve(odd.id)
    assert (odd.status, odd.amount_paid, odd.attempt_count) == ("open", 0, 1)
    assert client.v1.payment_intents.retrieve(odd.payment_intent).last_payment_error.code == "invalid_charge_amount"
    assert "invoice.payment_failed" in event_types(client, odd.id)

    even = client.v1.invoices.pay(client.v1.invoices.finalize_invoice(draft(client, customer.id, 20130, "kwd").id).id)
    assert (even.status, even.amount_paid) == ("paid", 20130)
