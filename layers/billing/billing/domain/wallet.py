"""A prepaid wallet's credit lots: what is left of each top-up, what has expired, what a debit takes (pure).

A wallet holds its lots as ``{lot id: Lot}``: each credit transaction (a top-up) is one lot with the credits still
available from it, its priority (lower is spent first; none is last) and its expiry. The balance is the sum of the
lots alive at an instant, so an expired lot leaves the balance exactly at its expiry, whoever reads it. Credits are
money only through the wallet's conversion rate (``amount = credits * conversion_rate``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_UP, Decimal, localcontext

from billing.domain import money

ZERO = Decimal(0)
CREDIT_PLACES = Decimal("0.000000000001")  # credits are kept to 12 decimals
NO_PRIORITY = 1_000_000


@dataclass(frozen=True, slots=True)
class Lot:
    available: Decimal
    priority: int | None = None
    expires_at: datetime | None = None
    created_at: str = ""

    def alive(self, at: datetime) -> bool:
        return self.available > 0 and (self.expires_at is None or self.expires_at > at)


def balance(lots: Mapping[str, Lot], at: datetime) -> Decimal:
    """Credits available at ``at``."""
    return sum((lot.available for lot in lots.values() if lot.alive(at)), ZERO)


def expired(lots: Mapping[str, Lot], at: datetime) -> dict[str, Decimal]:
    """Lots that still hold credits but expired by ``at``: {lot id: credits that expire}."""
    return {
        lot_id: lot.available
        for lot_id, lot in lots.items()
        if lot.available > 0 and lot.expires_at is not None and lot.expires_at <= at
    }


def order(lots: Mapping[str, Lot], at: datetime) -> list[str]:
    """Live lots in spending order: priority (none last), then soonest expiry (none last), then oldest."""
    live = [(lot_id, lot) for lot_id, lot in lots.items() if lot.alive(at)]
    live.sort(
        key=lambda pair: (
            NO_PRIORITY if pair[1].priority is None else pair[1].priority,
            pair[1].expires_at is None,
            pair[1].expires_at or datetime.min.replace(tzinfo=at.tzinfo),
            pair[1].created_at,
            pair[0],
        )
    )
    return [lot_id for lot_id, _ in live]


def credits_for(amount: Decimal, conversion_rate: Decimal) -> Decimal:
    """Credits that pay ``amount`` of money (rounded up to 12 decimals: a debit never pays with too few)."""
    with localcontext(money.ROUNDING_CONTEXT):
        return (amount / conversion_rate).quantize(CREDIT_PLACES, rounding=ROUND_UP)


def worth(credits: Decimal, conversion_rate: Decimal, currency: str) -> Decimal:
    """What ``credits`` can pay, in whole minor units of ``currency`` (rounded down)."""
    from billing.domain.adjustments import spendable

    with localcontext(money.ROUNDING_CONTEXT):
        return spendable(credits * conversion_rate, currency)


def take(lots: Mapping[str, Lot], lot_id: str, credits: Decimal) -> dict[str, Lot]:
    """The lots after ``credits`` (at most the lot's) are taken from one lot."""
    lot = lots[lot_id]
    left = max(lot.available - credits, ZERO)
    return {**lots, lot_id: Lot(left, lot.priority, lot.expires_at, lot.created_at)}
