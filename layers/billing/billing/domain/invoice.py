"""An invoice's lines, computed as pure data from a subscription period, its prices and its usage.

What one period-end invoice carries, in this order:

1. FIXED ARREAR charges of the closed period;
2. USAGE charges of the closed period, one line per price, from the usage of its meter over
   ``[period.start, period.end)`` (a price whose meter saw no usage gives a zero line, so the invoice
   shows every metered item);
3. FIXED ADVANCE charges of the next period (``advance_period``);
4. late-usage adjustment lines, one per earlier period and price, priced as the difference the late
   units make under that period's price (``pricing.price_late_usage``), labelled with that period.

An opening invoice (a subscription with ADVANCE charges, billed at creation) passes no closed period
and the first period as ``advance_period``. Each line is rounded once by pricing; the subtotal is the
exact sum of the rounded lines, so it is what Stripe bills, to the minor unit. Nothing here reads a
clock or makes ids: the caller supplies both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from billing.domain import money
from billing.domain.periods import Period
from billing.domain.pricing import (
    Charge,
    InvoiceCadence,
    Price,
    PriceType,
    TierCharge,
    as_price,
    price_late_usage,
    price_quantity,
)

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class LateUsage:
    """Units of ``meter_id`` that arrived after the period ``[period_start, period_end)`` was invoiced."""

    price: Price | Mapping[str, Any]  # the price that applied in that period
    period_start: datetime
    period_end: datetime
    billed_quantity: Decimal
    late_quantity: Decimal


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    price_id: str | None
    meter_id: str | None
    price_type: str
    period_start: datetime
    period_end: datetime
    quantity: Decimal
    amount: Decimal
    description: str
    is_adjustment: bool = False
    breakdown: tuple[TierCharge, ...] = ()


@dataclass(frozen=True, slots=True)
class InvoiceDraft:
    currency: str
    lines: tuple[InvoiceLine, ...]
    subtotal: Decimal
    total: Decimal

    @property
    def is_zero_total(self) -> bool:
        return self.total.is_zero()


def _name(price: Price, labels: Mapping[str, str]) -> str:
    """What a customer reads on the line (here and on the Stripe invoice): the price's display name, else the name
    the caller gives it (the meter's or feature's name for usage, the plan's for a fixed charge), never an id."""
    return price.display_name or labels.get(price.id or "") or price.billing_model.value.replace("_", " ").title()


def _num(value: Decimal) -> str:
    """A quantity for a description: plain notation, no trailing zeros."""
    return format(value.normalize(), "f") if value else "0"


def _tiers_text(breakdown: Sequence[TierCharge], currency: str) -> str:
    parts = []
    for tier in breakdown:
        text = f"tier {tier.tier}: {_num(tier.quantity)} x {format(tier.unit_amount, 'f')}"
        if tier.flat_amount:
            text += f" + {money.format_money(tier.flat_amount, currency)} flat"
        parts.append(text)
    return "; ".join(parts)


def _describe(price: Price, charge: Charge, labels: Mapping[str, str]) -> str:
    name = _name(price, labels)
    if price.type is PriceType.FIXED:
        return name if charge.quantity == 1 else f"{name} x {_num(charge.quantity)}"
    text = f"{name}: {_num(charge.quantity)} units"
    if charge.billable_quantity != charge.quantity:
        text += f" ({_num(charge.billable_quantity)} packages)"
    if charge.breakdown:
        text += f" ({_tiers_text(charge.breakdown, charge.currency)})"
    return text


def _line(price: Price, period: Period, charge: Charge, labels: Mapping[str, str]) -> InvoiceLine:
    return InvoiceLine(
        price_id=price.id,
        meter_id=price.meter_id,
        price_type=price.type.value,
        period_start=period.start,
        period_end=period.end,
        quantity=charge.quantity,
        amount=charge.amount,
        description=_describe(price, charge, labels),
        breakdown=charge.breakdown,
    )


def _adjustment(late: LateUsage, currency: str, labels: Mapping[str, str]) -> InvoiceLine:
    price = as_price(late.price)
    if price.currency != currency:
        raise ValueError(f"late usage price {price.id} is in {price.currency}, the invoice in {currency}")
    charge = price_late_usage(price, late.billed_quantity, late.late_quantity)
    label = f"{late.period_start:%Y-%m-%d} to {late.period_end:%Y-%m-%d}"
    return InvoiceLine(
        price_id=price.id,
        meter_id=price.meter_id,
        price_type=price.type.value,
        period_start=late.period_start,
        period_end=late.period_end,
        quantity=charge.late_quantity,
        amount=charge.amount,
        description=f"Late usage for {label}: {_name(price, labels)}: {_num(charge.late_quantity)} units",
        is_adjustment=True,
        breakdown=charge.after.breakdown,
    )


def build_invoice(
    *,
    currency: str,
    prices: Iterable[Price | Mapping[str, Any]],
    period: Period | None,
    advance_period: Period | None = None,
    usage: Mapping[str, Decimal] | None = None,
    late_usage: Sequence[LateUsage] = (),
    fixed_quantities: Mapping[str, Decimal] | None = None,
    labels: Mapping[str, str] | None = None,
) -> InvoiceDraft:
    """Lines, subtotal and total of one invoice (see the module docstring for what goes in).

    ``usage`` maps meter ids to the quantity over the closed period; ``fixed_quantities`` maps price
    ids to a FIXED price's quantity (1 when absent); ``labels`` maps price ids to the name a line shows when the
    price has no display name. Every price must be in ``currency``.
    """
    labels = labels or {}
    code = money.normalize_currency(currency)
    usage = usage or {}
    fixed_quantities = fixed_quantities or {}
    parsed = [as_price(p) for p in prices]
    for price in parsed:
        if price.currency != code:
            raise ValueError(f"price {price.id} is in {price.currency}, the invoice in {code}")

    def fixed(price: Price) -> Decimal:
        return fixed_quantities.get(price.id or "", Decimal(1))

    lines: list[InvoiceLine] = []
    if period is not None:
        for price in parsed:
            if price.type is PriceType.FIXED and price.invoice_cadence is InvoiceCadence.ARREAR:
                lines.append(_line(price, period, price_quantity(price, fixed(price)), labels))
        for price in parsed:
            if price.type is PriceType.USAGE:
                quantity = usage.get(price.meter_id or "", ZERO)
                lines.append(_line(price, period, price_quantity(price, quantity), labels))
    if advance_period is not None:
        for price in parsed:
            if price.type is PriceType.FIXED and price.invoice_cadence is InvoiceCadence.ADVANCE:
                lines.append(_line(price, advance_period, price_quantity(price, fixed(price)), labels))
    ordered_late = sorted(late_usage, key=lambda item: (item.period_start, item.period_end))
    lines.extend(_adjustment(item, code, labels) for item in ordered_late)
    with localcontext(money.EXACT_CONTEXT):
        subtotal = sum((line.amount for line in lines), money.round_minor(ZERO, code))
    return InvoiceDraft(currency=code, lines=tuple(lines), subtotal=subtotal, total=subtotal)
