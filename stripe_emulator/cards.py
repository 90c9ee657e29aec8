"""Stripe's test cards and `pm_card_*` test payment methods."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TestCard:
    number: str
    brand: str
    outcome: str  # succeeded | declined | authentication_required
    decline_code: str | None = None
    funding: str = "credit"
    after: str | None = None  # what follows a successful charge: "dispute" | "refund_fails"
    country: str = "US"

    @property
    def last4(self) -> str:
        return self.number[-4:]


CARDS: dict[str, TestCard] = {
    c.number: c
    for c in (
        TestCard("4242424242424242", "visa", "succeeded"),
        TestCard("4000056655665556", "visa", "succeeded", funding="debit"),
        TestCard("5555555555554444", "mastercard", "succeeded"),
        TestCard("378282246310005", "amex", "succeeded"),
        TestCard("4000000000000002", "visa", "declined", "generic_decline"),
        TestCard("4000000000000341", "visa", "declined", "generic_decline"),
        TestCard("4000000000009995", "visa", "declined", "insufficient_funds"),
        TestCard("4000002500003155", "visa", "authentication_required"),
        TestCard("4000002760003184", "visa", "authentication_required"),
        # https://docs.stripe.com/testing#disputes: the charge succeeds, then is disputed as fraudulent.
        TestCard("4000000000000259", "visa", "succeeded", after="dispute"),
        # https://docs.stripe.com/testing#refunds: the charge succeeds; a refund starts succeeded, then fails.
        TestCard("4000000000005126", "visa", "succeeded", after="refund_fails"),
    )
}

TOKENS: dict[str, str] = {
    "pm_card_visa": "4242424242424242",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_amex": "378282246310005",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeCustomerFail": "4000000000000341",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_authenticationRequired": "4000002500003155",
    "pm_card_authenticationRequiredOnSetup": "4000002500003155",
    "pm_card_createDispute": "4000000000000259",
    "pm_card_refundFail": "4000000000005126",
    "pm_card_authenticationRequiredChargeAlways": "4000002760003184",
    "tok_createDispute": "4000000000000259",
    "tok_refundFail": "4000000000005126",
    "tok_visa": "4242424242424242",
    "tok_mastercard": "5555555555554444",
    "tok_chargeDeclined": "4000000000000002",
}

DECLINE_MESSAGES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
}


def luhn_ok(number: str) -> bool:
    digits = [int(d) for d in number]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def lookup(number: str) -> TestCard | None:
    """The test card for a number; None for a number that is not a card at all (bad length or checksum).

    A well-formed number that is not one of Stripe's test cards behaves like a real card used in test mode:
    it is declined.
    """
    number = number.replace(" ", "").replace("-", "")
    if not number.isdigit() or not 12 <= len(number) <= 19 or not luhn_ok(number):
        return None
    known = CARDS.get(number)
    if known:
        return known
    brand = "visa" if number.startswith("4") else "mastercard" if number[0] in "25" else "unknown"
    return TestCard(number, brand, "declined", "live_mode_test_card")
