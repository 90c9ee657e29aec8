"""A partial day's records are read with a projection: it must hold everything the aggregates are computed from."""

from __future__ import annotations

from decimal import Decimal

from billing.domain import aggregates as math
from billing.store.aggregates import FIGURE_ATTRIBUTES

INVOICE = {
    "id": "inv_1",
    "currency": "usd",
    "status": "published",
    "invoice_status": "FINALIZED",
    "payment_status": "PARTIALLY_REFUNDED",
    "created_at": "2026-02-01T10:00:00Z",
    "finalized_at": "2026-02-02T10:00:00Z",
    "total": Decimal("90"),
    "subtotal": Decimal("100"),
    "total_discount": Decimal("15"),
    "total_prepaid_credits_applied": Decimal("5"),
    "total_tax": Decimal("10"),
    "amount_paid": Decimal("40"),
    "amount_remaining": Decimal("50"),
    "line_items": [{"id": "l1", "amount": Decimal("100")}],
    "customer_id": "cust_1",
}
PAYMENT = {
    "id": "pay_1",
    "currency": "usd",
    "payment_status": "PARTIALLY_REFUNDED",
    "amount": Decimal("40"),
    "refunded_amount": Decimal("5"),
    "disputed_amount": Decimal("1"),
    "succeeded_at": "2026-02-02T11:00:00Z",
    "created_at": "2026-02-02T11:00:00Z",
    "destination_id": "inv_1",
}
SUBSCRIPTION = {
    "id": "subs_1",
    "currency": "usd",
    "created_at": "2026-01-01T00:00:00Z",
    "start_date": "2026-01-05T00:00:00Z",
    "cancel_at_period_end": True,
    "cancel_at": "2026-03-05T00:00:00Z",
    "line_items": [],
}


def test_projected_records_contribute_what_whole_records_do():
    for kind, record in (("invoice", INVOICE), ("payment", PAYMENT), ("subscription", SUBSCRIPTION)):
        projected = {k: v for k, v in record.items() if k in FIGURE_ATTRIBUTES}
        assert math.contributions(kind, projected) == math.contributions(kind, record), kind
    assert math.contributions("invoice", INVOICE)[("D#2026-02-02", "usd")]["discounts"] == Decimal("15")
