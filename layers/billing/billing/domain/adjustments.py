"""What turns an invoice's priced lines into what the customer owes: discounts, prepaid credits and taxes.

The one calculation order (Flexprice's: its invoice lines carry ``line_item_discount``, ``invoice_level_discount``
and ``prepaid_credits_applied``, and its applied taxes carry a ``taxable_amount`` net of all three):

1. **line amounts** — the priced lines as ``domain.invoice`` rounds them;
2. **line discounts** — each coupon attached to one line's price, in attachment order, on what is left of that line;
3. **invoice discounts** — each invoice-level coupon, in attachment order, on what is left of the whole invoice;
4. **credits** — prepaid credit sources (wallets, grants) in priority order (lower first), then the soonest expiry
   (no expiry last), then the order given; each spends what it has, up to what is left;
5. **taxes** — every applicable rate on the same taxable amount (what is left after 1-4; rates do not compound):
   a percentage rate's tax is ``taxable * rate / 100``, a fixed rate's is its amount when something is taxable.

Every step's amount is rounded once, half up, to the currency's minor unit (``money.round_minor``); every total is
the exact sum of rounded amounts, so ``total = subtotal - discounts - credits + taxes`` holds to the minor unit and
so does the Stripe invoice built from the same amounts (one invoice item each, see docs/billing-math.md).

Nothing is ever discounted, credited or taxed below zero: a step takes at most what is left. A line with a negative
amount (a late-usage credit) takes no line discount; the invoice-level steps work on the sum of every line.

The invoice-level amounts are also spread over the lines (``invoice_discount`` and ``credits`` per line, as
Flexprice's line fields show them), by the largest-remainder method in minor units, so a line's shares add up to
the invoice's amount exactly. The spread is informative: the invoice's totals never depend on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal, localcontext

from billing.domain import money

ZERO = Decimal(0)
HUNDRED = Decimal(100)
FIXED = "fixed"
PERCENTAGE = "percentage"


@dataclass(frozen=True, slots=True)
class Line:
    """A priced invoice line: its key (the line id) and the price it was priced by (what a line coupon names)."""

    key: str
    amount: Decimal
    price_id: str | None = None


@dataclass(frozen=True, slots=True)
class Discount:
    """One coupon applied to this invoice: on the line priced by ``price_id``, or on the invoice when it is None."""

    id: str
    name: str
    type: str  # "fixed" | "percentage"
    amount_off: Decimal = ZERO
    percentage_off: Decimal = ZERO
    price_id: str | None = None

    def __post_init__(self) -> None:
        if self.type not in (FIXED, PERCENTAGE):
            raise ValueError(f"discount type must be fixed or percentage, not {self.type!r}")
        if self.type == FIXED and self.amount_off < 0:
            raise ValueError("amount_off must not be negative")
        if self.type == PERCENTAGE and not ZERO <= self.percentage_off <= HUNDRED:
            raise ValueError("percentage_off must be between 0 and 100")


@dataclass(frozen=True, slots=True)
class CreditSource:
    """Prepaid credit that may pay this invoice, already in the invoice's currency."""

    id: str
    available: Decimal
    priority: int = 0
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TaxRate:
    id: str
    name: str
    type: str  # "fixed" | "percentage"
    percentage: Decimal = ZERO
    fixed_amount: Decimal = ZERO

    def __post_init__(self) -> None:
        if self.type not in (FIXED, PERCENTAGE):
            raise ValueError(f"tax rate type must be fixed or percentage, not {self.type!r}")
        if self.percentage < 0 or self.fixed_amount < 0:
            raise ValueError("a tax rate must not be negative")


@dataclass(frozen=True, slots=True)
class AppliedDiscount:
    discount_id: str
    line_key: str | None  # None: an invoice-level discount
    original: Decimal  # what was left before this discount
    amount: Decimal
    final: Decimal


@dataclass(frozen=True, slots=True)
class AppliedCredit:
    source_id: str
    amount: Decimal


@dataclass(frozen=True, slots=True)
class AppliedTax:
    tax_id: str
    taxable: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class AdjustedLine:
    key: str
    amount: Decimal
    line_discount: Decimal
    invoice_discount: Decimal
    credits: Decimal


@dataclass(frozen=True, slots=True)
class Adjusted:
    currency: str
    lines: tuple[AdjustedLine, ...]
    discounts: tuple[AppliedDiscount, ...]
    credits: tuple[AppliedCredit, ...]
    taxes: tuple[AppliedTax, ...]
    subtotal: Decimal
    total_discount: Decimal
    total_credits: Decimal
    taxable: Decimal
    total_tax: Decimal
    total: Decimal


def _discount(discount: Discount, base: Decimal, code: str) -> Decimal:
    if base <= 0:
        return money.round_minor(ZERO, code)
    if discount.type == PERCENTAGE:
        amount = money.round_minor(base * discount.percentage_off / HUNDRED, code)
    else:
        amount = money.round_minor(discount.amount_off, code)
    return min(amount, base)


def credit_order(sources: Sequence[CreditSource]) -> list[CreditSource]:
    """Priority (lower first), then the soonest expiry (none last), then the order given."""
    indexed = list(enumerate(sources))
    indexed.sort(key=lambda pair: (pair[1].priority, pair[1].expires_at is None, pair[1].expires_at or 0, pair[0]))
    return [source for _, source in indexed]


def spendable(amount: Decimal, currency: str) -> Decimal:
    """What a credit balance can pay, in whole minor units: rounded down, so nobody spends more than they hold."""
    return amount.quantize(money.quantum(currency), rounding=ROUND_DOWN, context=money.ROUNDING_CONTEXT)


def spread(total: Decimal, weights: Sequence[Decimal], currency: str) -> list[Decimal]:
    """``total`` split over ``weights`` (non-negative) in proportion, in minor units, summing to ``total`` exactly
    (largest remainder; ties to the earlier weight)."""
    code = money.normalize_currency(currency)
    whole = sum(weights, ZERO)
    if total == 0 or whole <= 0:
        return [money.round_minor(ZERO, code) for _ in weights]
    unit = money.quantum(code)
    units = int(total / unit)
    with localcontext(money.ROUNDING_CONTEXT):
        exact = [w * units / whole for w in weights]
    floors = [int(x) for x in exact]
    left = units - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return [money.round_minor(Decimal(n) * unit, code) for n in floors]


def adjust(
    currency: str,
    lines: Sequence[Line],
    *,
    discounts: Sequence[Discount] = (),
    credits: Sequence[CreditSource] = (),
    taxes: Sequence[TaxRate] = (),
    at: datetime | None = None,
) -> Adjusted:
    """Apply discounts, credits and taxes to ``lines`` in the one calculation order (module docstring).

    ``at`` is the instant credits are spent: a source that expired by then (``expires_at <= at``) pays nothing.
    """
    code = money.normalize_currency(currency)
    zero = money.round_minor(ZERO, code)
    for line in lines:
        if not money.is_rounded(line.amount, code):
            raise ValueError(f"line {line.key} is not rounded to {code}'s minor unit")
    with localcontext(money.EXACT_CONTEXT):
        subtotal = sum((line.amount for line in lines), zero)

        # 2. line discounts
        net = {line.key: line.amount for line in lines}
        line_off = {line.key: zero for line in lines}
        applied: list[AppliedDiscount] = []
        for discount in discounts:
            if discount.price_id is None:
                continue
            for line in lines:
                if line.price_id != discount.price_id:
                    continue
                before = net[line.key]
                amount = _discount(discount, before, code)
                net[line.key] = before - amount
                line_off[line.key] += amount
                applied.append(AppliedDiscount(discount.id, line.key, before, amount, before - amount))

        # 3. invoice discounts
        remaining = sum(net.values(), zero)
        invoice_off = zero
        for discount in discounts:
            if discount.price_id is not None:
                continue
            amount = _discount(discount, remaining, code)
            applied.append(AppliedDiscount(discount.id, None, remaining, amount, remaining - amount))
            remaining -= amount
            invoice_off += amount

        # 4. credits
        used: list[AppliedCredit] = []
        total_credits = zero
        for source in credit_order(credits):
            if remaining <= 0:
                break
            if at is not None and source.expires_at is not None and source.expires_at <= at:
                continue
            amount = min(spendable(source.available, code), remaining)
            if amount <= 0:
                continue
            used.append(AppliedCredit(source.id, amount))
            remaining -= amount
            total_credits += amount

        # 5. taxes
        taxable = max(remaining, zero)
        applied_taxes: list[AppliedTax] = []
        for rate in taxes:
            if taxable <= 0:
                amount = zero
            elif rate.type == PERCENTAGE:
                amount = money.round_minor(taxable * rate.percentage / HUNDRED, code)
            else:
                amount = money.round_minor(rate.fixed_amount, code)
            applied_taxes.append(AppliedTax(rate.id, taxable, amount))
        total_tax = sum((t.amount for t in applied_taxes), zero)
        total_discount = sum(line_off.values(), zero) + invoice_off
        total = subtotal - total_discount - total_credits + total_tax

    weights = [max(net[line.key], ZERO) for line in lines]
    invoice_shares = spread(invoice_off, weights, code)
    with localcontext(money.EXACT_CONTEXT):
        after = [w - s for w, s in zip(weights, invoice_shares, strict=True)]
    credit_shares = spread(total_credits, after, code)
    adjusted = tuple(
        AdjustedLine(line.key, line.amount, line_off[line.key], share, credit)
        for line, share, credit in zip(lines, invoice_shares, credit_shares, strict=True)
    )
    return Adjusted(
        currency=code,
        lines=adjusted,
        discounts=tuple(applied),
        credits=tuple(used),
        taxes=tuple(applied_taxes),
        subtotal=subtotal,
        total_discount=total_discount,
        total_credits=total_credits,
        taxable=taxable,
        total_tax=total_tax,
        total=total,
    )
