"""Who may collect an invoice's money, and how much: the collection rules, with no I/O.

The invariant every rule here serves: for every invoice, the money collected across every channel (Stripe's
automatic collection, CARD, PAYMENT_LINK, OFFLINE, manual settlement) minus refunds and disputed funds never exceeds
what is due, no money is collected after a void, and our invoice and Stripe's agree once events have been applied.

- **One collector at a time.** A finalized invoice has at most one collector: nobody (anyone may pay it), Stripe
  (a Stripe invoice exists or is being created for it: only Stripe, and out-of-band settlements mirrored to Stripe,
  may pay it), or one in-flight payment of ours (a CARD charge or a PAYMENT_LINK page: the Stripe sync waits for it
  to end). A payment's claim carries a lease so a payment abandoned mid-flight cannot block collection forever.
- **What Stripe collects** is what is still due when the Stripe invoice is built: the invoice's lines, minus one
  "payments received" line for what was already paid here, so Stripe's total is explainable line by line.
- **Stripe's charge rules.** Stripe refuses to charge less than a per-currency minimum (``STRIPE_MINIMUM``); such a
  remainder is not sent to Stripe and stays payable here (OFFLINE or manual settlement). In BHD, JOD, KWD, OMR and
  TND Stripe charges only amounts whose last minor digit is 0: the remainder is rounded down to that step and the
  difference is recorded on our invoice as an adjustment (a non-cash reduction, ``adjustment_amount``), so our
  amount due and Stripe's total stay equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType

from billing.domain.money import from_minor_units, round_minor, to_minor_units

STRIPE = "stripe"
PAYMENT_PREFIX = "payment:"

# Stripe's minimum charge amounts (https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts), in major
# units of the charge currency. Currencies Stripe does not list take no minimum here.
STRIPE_MINIMUM = MappingProxyType(
    {
        "usd": Decimal("0.50"),
        "aed": Decimal("2.00"),
        "aud": Decimal("0.50"),
        "bgn": Decimal("1.00"),
        "brl": Decimal("0.50"),
        "cad": Decimal("0.50"),
        "chf": Decimal("0.50"),
        "czk": Decimal("15.00"),
        "dkk": Decimal("2.50"),
        "eur": Decimal("0.50"),
        "gbp": Decimal("0.30"),
        "hkd": Decimal("4.00"),
        "huf": Decimal("175.00"),
        "inr": Decimal("0.50"),
        "jpy": Decimal("50"),
        "mxn": Decimal("10"),
        "myr": Decimal("2"),
        "nok": Decimal("3.00"),
        "nzd": Decimal("0.50"),
        "pln": Decimal("2.00"),
        "ron": Decimal("2.00"),
        "sek": Decimal("3.00"),
        "sgd": Decimal("0.50"),
        "thb": Decimal("10"),
    }
)

# Stripe: "To ensure compatibility with Stripe's payments partners, these API calls require the least-significant
# (last) digit to be 0" (https://docs.stripe.com/currencies#three-decimal).
THREE_DECIMAL_STEP = MappingProxyType({"bhd": 10, "jod": 10, "kwd": 10, "omr": 10, "tnd": 10})


def payment_collector(payment_id: str) -> str:
    return f"{PAYMENT_PREFIX}{payment_id}"


def held_by_payment(collector: str | None) -> str | None:
    """The payment id holding the invoice, if a payment holds it."""
    if collector and collector.startswith(PAYMENT_PREFIX):
        return collector[len(PAYMENT_PREFIX) :]
    return None


@dataclass(frozen=True)
class StripeCharge:
    """What a Stripe invoice built now for an invoice would collect."""

    remainder: Decimal  # still due here before any rounding
    collect_minor: int  # what Stripe's invoice totals, in Stripe's minor units
    adjustment: Decimal  # written off here so that collect == amount due (three-decimal rounding); 0 otherwise
    below_minimum: bool  # Stripe would refuse to charge it


def stripe_charge(amount_due: Decimal, amount_paid: Decimal, currency: str) -> StripeCharge:
    """What Stripe should collect for an invoice with ``amount_due`` of which ``amount_paid`` is paid."""
    code = currency.lower()
    remainder = round_minor(max(amount_due - amount_paid, Decimal(0)), code)
    minor = to_minor_units(remainder, code)
    step = THREE_DECIMAL_STEP.get(code, 1)
    collect = minor - (minor % step)
    adjustment = remainder - from_minor_units(collect, code)
    minimum = STRIPE_MINIMUM.get(code)
    below = collect > 0 and minimum is not None and from_minor_units(collect, code) < minimum
    return StripeCharge(remainder, collect, round_minor(adjustment, code), below)


@dataclass(frozen=True)
class StripeSettlement:
    """How a paid Stripe invoice splits into money for our invoice."""

    cash_minor: int  # charged by Stripe (card, bank, ...)
    credit_minor: int  # taken from the Stripe customer's credit balance
    carried_minor: int  # neither: Stripe marked it paid and carried the amount to the customer's balance


def stripe_settlement(
    *, total: int, amount_due: int, amount_paid: int, paid_out_of_band: bool, starting_balance: int = 0
) -> StripeSettlement:
    """Split a paid Stripe invoice (all figures in Stripe's minor units) into cash, balance credit and carry-over.

    Out of band → nothing was collected by Stripe (the settlement was recorded here first). Otherwise Stripe's
    ``amount_paid`` is cash (at most the invoice's own total: a debit balance carried in from elsewhere is not this
    invoice's money), a credit balance applied at finalization (``starting_balance`` < 0) paid part of the total, and
    whatever is left of the total was carried forward (an amount below Stripe's minimum charge).
    """
    if paid_out_of_band or total <= 0:
        return StripeSettlement(0, 0, 0)
    credit = min(max(-starting_balance, 0), total) if starting_balance < 0 else max(total - amount_due, 0)
    cash = min(max(amount_paid, 0), total - credit)
    carried = max(total - credit - cash, 0)
    return StripeSettlement(cash, credit, carried)


def invoice_payment_status(
    current: str, amount_due: Decimal, amount_paid: Decimal, refunded: Decimal, withdrawn: Decimal
) -> str:
    """An invoice's payment status from its money: paid in full, over, refunded, or still waiting."""
    if amount_due <= 0 and amount_paid <= 0 and refunded <= 0 and withdrawn <= 0:
        return "SUCCEEDED"
    if amount_paid > amount_due:
        return "OVERPAID"
    if amount_paid >= amount_due:
        return "SUCCEEDED"
    if refunded > 0:
        return "REFUNDED" if amount_paid <= 0 else "PARTIALLY_REFUNDED"
    if current in ("SUCCEEDED", "OVERPAID"):
        return "PENDING"  # a dispute took money back: it is due again
    return current if current in ("PENDING", "FAILED") else "PENDING"
