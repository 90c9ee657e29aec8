"""The collection rules, without I/O: what Stripe may collect, how a paid Stripe invoice splits, and what an
out-of-band settlement does against an in-memory fake of the Stripe edge."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.collection import (
    STRIPE_MINIMUM,
    invoice_payment_status,
    stripe_charge,
    stripe_settlement,
)
from billing.domain.money import from_minor_units, to_minor_units
from billing.errors import Conflict
from billing.services import collection

CURRENCIES = ["usd", "eur", "jpy", "kwd", "bhd", "gbp"]


@given(
    currency=st.sampled_from(CURRENCIES),
    due_minor=st.integers(min_value=0, max_value=10**9),
    paid_share=st.fractions(min_value=0, max_value=1),
)
def test_stripe_never_collects_more_than_is_still_due(currency: str, due_minor: int, paid_share: Any) -> None:
    due = from_minor_units(due_minor, currency)
    paid = from_minor_units(int(due_minor * paid_share), currency)
    charge = stripe_charge(due, paid, currency)
    collect = from_minor_units(charge.collect_minor, currency)
    assert collect + charge.adjustment == charge.remainder == due - paid
    assert 0 <= collect <= due - paid
    if currency in ("kwd", "bhd"):
        assert charge.collect_minor % 10 == 0 and to_minor_units(charge.adjustment, currency) < 10
    else:
        assert charge.adjustment == 0
    minimum = STRIPE_MINIMUM.get(currency)
    assert charge.below_minimum == (minimum is not None and 0 < collect < minimum)


def test_worked_examples() -> None:
    kwd = stripe_charge(Decimal("20.125"), Decimal("0"), "kwd")
    assert (kwd.collect_minor, kwd.adjustment, kwd.below_minimum) == (20120, Decimal("0.005"), False)
    assert stripe_charge(Decimal("19.99"), Decimal("19.60"), "usd").below_minimum is True
    assert stripe_charge(Decimal("19.99"), Decimal("19.49"), "usd").below_minimum is False
    assert stripe_charge(Decimal("100"), Decimal("60"), "jpy").below_minimum is True
    paid = stripe_charge(Decimal("10.00"), Decimal("10.00"), "usd")
    assert (paid.remainder, paid.collect_minor) == (Decimal("0.00"), 0)


@given(
    total=st.integers(min_value=1, max_value=10**7),
    credit=st.integers(min_value=0, max_value=10**7),
    short=st.integers(min_value=0, max_value=100),
)
def test_a_paid_stripe_invoice_splits_into_cash_credit_and_carry_over(total: int, credit: int, short: int) -> None:
    applied = min(credit, total)
    amount_due = total - applied
    amount_paid = max(amount_due - short, 0)
    split = stripe_settlement(
        total=total, amount_due=amount_due, amount_paid=amount_paid, paid_out_of_band=False, starting_balance=-credit
    )
    assert split.cash_minor + split.credit_minor + split.carried_minor == total
    assert split.cash_minor == amount_paid and split.credit_minor == applied
    assert split.carried_minor == amount_due - amount_paid


def test_out_of_band_and_zero_paid_record_no_money() -> None:
    oob = stripe_settlement(total=2550, amount_due=2550, amount_paid=0, paid_out_of_band=True)
    assert (oob.cash_minor, oob.credit_minor, oob.carried_minor) == (0, 0, 0)
    carried = stripe_settlement(total=30, amount_due=30, amount_paid=0, paid_out_of_band=False)
    assert (carried.cash_minor, carried.credit_minor, carried.carried_minor) == (0, 0, 30)
    # a debit carried in from elsewhere is not this invoice's money
    debit = stripe_settlement(
        total=1000, amount_due=1030, amount_paid=1030, paid_out_of_band=False, starting_balance=30
    )
    assert (debit.cash_minor, debit.credit_minor) == (1000, 0)


@pytest.mark.parametrize(
    ("current", "due", "paid", "refunded", "disputed", "expected"),
    [
        ("PENDING", "10", "10", "0", "0", "SUCCEEDED"),
        ("PENDING", "10", "12", "0", "0", "OVERPAID"),
        ("SUCCEEDED", "10", "6", "4", "0", "PARTIALLY_REFUNDED"),
        ("SUCCEEDED", "10", "0", "10", "0", "REFUNDED"),
        ("SUCCEEDED", "10", "0", "0", "10", "PENDING"),
        ("FAILED", "10", "3", "0", "0", "FAILED"),
        ("PENDING", "0", "0", "0", "0", "SUCCEEDED"),
    ],
)
def test_invoice_payment_status_follows_the_money(current, due, paid, refunded, disputed, expected) -> None:
    got = invoice_payment_status(current, Decimal(due), Decimal(paid), Decimal(refunded), Decimal(disputed))
    assert got == expected


# ---------------------------------------------------------------------------------------------- fake Stripe edge


class FakeInvoices:
    def __init__(self, status: str, paid_out_of_band: bool = False) -> None:
        self.invoice = SimpleNamespace(id="in_1", status=status, paid_out_of_band=paid_out_of_band)
        self.paid: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    def retrieve(self, stripe_id: str) -> Any:
        return self.invoice

    def pay(self, stripe_id: str, params: dict[str, Any], options: dict[str, Any]) -> Any:
        self.paid.append((stripe_id, params, options))
        self.invoice.status, self.invoice.paid_out_of_band = "paid", True
        return self.invoice


@pytest.fixture
def fake_stripe(monkeypatch):
    def install(status: str, *, paid_out_of_band: bool = False, state: str = "finalized") -> FakeInvoices:
        invoices = FakeInvoices(status, paid_out_of_band)
        edge = SimpleNamespace(client=SimpleNamespace(v1=SimpleNamespace(invoices=invoices)))
        monkeypatch.setattr(collection.stripe_edge, "require", lambda scope: edge)
        monkeypatch.setattr(collection.stripe_edge, "translated", lambda action: _nothing())
        link = {"provider_entity_id": "in_1", "metadata": {"state": state}}
        monkeypatch.setattr(collection.mappings, "find", lambda *args: link)
        return invoices

    return install


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


INVOICE = {"id": "inv_1", "currency": "usd", "amount_remaining": "25.50"}


def test_an_open_stripe_invoice_is_marked_paid_out_of_band_before_anything_is_recorded(fake_stripe) -> None:
    fake = fake_stripe("open")
    collection.mirror_to_stripe(SimpleNamespace(), INVOICE, Decimal("25.50"), "an offline payment")
    [(stripe_id, params, options)] = fake.paid
    assert (stripe_id, params) == ("in_1", {"paid_out_of_band": True})
    assert options["idempotency_key"] == "billing:invoice.paid_out_of_band:inv_1"


def test_a_retry_after_the_out_of_band_mark_replays_it(fake_stripe) -> None:
    fake = fake_stripe("paid", paid_out_of_band=True)
    collection.mirror_to_stripe(SimpleNamespace(), INVOICE, Decimal("25.50"), "an offline payment")
    assert len(fake.paid) == 1  # the same idempotency key: Stripe replays its first answer


@pytest.mark.parametrize(
    ("status", "oob", "state", "amount"),
    [
        ("paid", False, "finalized", "25.50"),  # Stripe charged it: the webhook records that money
        ("void", False, "finalized", "25.50"),
        ("open", False, "draft", "25.50"),  # the sync is still building it
        ("open", False, "finalized", "10.00"),  # Stripe cannot settle part of an invoice out of band
    ],
)
def test_refusals_touch_nothing_at_stripe(fake_stripe, status, oob, state, amount) -> None:
    fake = fake_stripe(status, paid_out_of_band=oob, state=state)
    with pytest.raises(Conflict):
        collection.mirror_to_stripe(SimpleNamespace(), INVOICE, Decimal(amount), "an offline payment")
    assert fake.paid == []
