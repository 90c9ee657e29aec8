"""HTTP schemas of invoices (Flexprice ``InvoiceResponse``, ``InvoiceLineItemResponse``, ``types.InvoiceFilter``,
``UpdatePaymentStatusRequest``, ``GetPreviewInvoiceRequest``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, field_validator

from billing.domain.money import format_money
from billing.schemas.common import CsvList, Edge, ListFilter, Money, Timestamp
from billing.timeutil import parse_iso

InvoiceStatus = Literal["DRAFT", "FINALIZED", "VOIDED", "SKIPPED"]
PaymentStatus = Literal[
    "INITIATED",
    "PENDING",
    "PROCESSING",
    "SUCCEEDED",
    "OVERPAID",
    "FAILED",
    "REFUNDED",
    "PARTIALLY_REFUNDED",
    "VOIDED",
]
_INVOICE_STATUSES = {"DRAFT", "FINALIZED", "VOIDED", "SKIPPED"}
_PAYMENT_STATUSES = set(PaymentStatus.__args__)  # type: ignore[attr-defined]


class InvoiceFilter(ListFilter):
    invoice_ids: CsvList | None = None
    customer_id: str | None = None
    external_customer_id: str | None = None
    subscription_id: str | None = None
    invoice_status: CsvList | None = None
    payment_status: CsvList | None = None
    billing_reason: str | None = None
    currency: str | None = None
    period_start_gte: Timestamp | None = None
    period_start_lte: Timestamp | None = None
    period_end_gte: Timestamp | None = None
    period_end_lte: Timestamp | None = None

    @field_validator("invoice_status")
    @classmethod
    def _invoice_statuses(cls, value: list[str] | None) -> list[str] | None:
        for status in value or []:
            if status.upper() not in _INVOICE_STATUSES:
                raise ValueError(f"unknown invoice_status {status!r}")
        return [s.upper() for s in value] if value else value

    @field_validator("payment_status")
    @classmethod
    def _payment_statuses(cls, value: list[str] | None) -> list[str] | None:
        for status in value or []:
            if status.upper() not in _PAYMENT_STATUSES:
                raise ValueError(f"unknown payment_status {status!r}")
        return [s.upper() for s in value] if value else value

    def keep(self, record: dict[str, Any]) -> bool:
        if not super().keep(record):
            return False
        if self.invoice_ids and record["id"] not in self.invoice_ids:
            return False
        if self.customer_id and record["customer_id"] != self.customer_id:
            return False
        if self.external_customer_id and record.get("external_customer_id") != self.external_customer_id:
            return False
        if self.subscription_id and record.get("subscription_id") != self.subscription_id:
            return False
        if self.invoice_status and record["invoice_status"] not in self.invoice_status:
            return False
        if self.payment_status and record["payment_status"] not in self.payment_status:
            return False
        if self.billing_reason and record.get("billing_reason") != self.billing_reason:
            return False
        if self.currency and record["currency"] != self.currency.lower():
            return False
        start, end = parse_iso(record["period_start"]), parse_iso(record["period_end"])
        if self.period_start_gte and start < self.period_start_gte:
            return False
        if self.period_start_lte and start > self.period_start_lte:
            return False
        if self.period_end_gte and end < self.period_end_gte:
            return False
        return not (self.period_end_lte and end > self.period_end_lte)


class PaymentUpdate(Edge):
    payment_status: PaymentStatus
    amount: Money | None = None

    @field_validator("payment_status", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class InvoicePreview(Edge):
    subscription_id: str = Field(min_length=1, max_length=100)
    period_start: Timestamp | None = None
    period_end: Timestamp | None = None
    hide_zero_charges_line_items: bool = False


def _money(value: Any, currency: str) -> str | None:
    return None if value is None else format_money(Decimal(value), currency)


def _quantity(value: Any) -> str:
    number = Decimal(value)
    return format(number.normalize() if number == number.to_integral_value() else number, "f")


def line_out(invoice: dict[str, Any], line: dict[str, Any]) -> dict[str, Any]:
    currency = invoice["currency"]
    return {
        "id": line["id"],
        "invoice_id": invoice.get("id"),
        "customer_id": invoice["customer_id"],
        "subscription_id": invoice.get("subscription_id"),
        "subscription_line_item_id": line.get("subscription_line_item_id"),
        "entity_id": line.get("price_id"),
        "entity_type": "plan",
        "price_id": line.get("price_id"),
        "price_type": line.get("price_type"),
        "meter_id": line.get("meter_id"),
        "meter_display_name": line.get("meter_display_name"),
        "display_name": line.get("display_name"),
        "plan_display_name": line.get("plan_display_name"),
        "currency": currency,
        "quantity": _quantity(line["quantity"]),
        "amount": _money(line["amount"], currency),
        "price_unit_amount": None if line.get("price_unit_amount") is None else format(line["price_unit_amount"], "f"),
        "period_start": line.get("period_start"),
        "period_end": line.get("period_end"),
        "metadata": {**(line.get("metadata") or {}), "line_type": line.get("kind", "charge")},
        "status": "published",
        "tenant_id": invoice["tenant_id"],
        "environment_id": invoice["environment_id"],
        "created_at": invoice.get("created_at"),
        "updated_at": invoice.get("updated_at"),
    }


_PLAIN = (
    "id",
    "customer_id",
    "subscription_id",
    "invoice_type",
    "invoice_status",
    "payment_status",
    "currency",
    "invoice_number",
    "billing_reason",
    "billing_period",
    "period_start",
    "period_end",
    "due_date",
    "issue_date",
    "finalized_at",
    "paid_at",
    "voided_at",
    "idempotency_key",
    "invoice_pdf_url",
    "hosted_invoice_url",
    "stripe_invoice_id",
    "description",
    "tenant_id",
    "environment_id",
    "status",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
)
_MONEY = ("amount_due", "amount_paid", "amount_remaining", "subtotal", "total")


def invoice_out(record: dict[str, Any]) -> dict[str, Any]:
    currency = record["currency"]
    out: dict[str, Any] = {field: record.get(field) for field in _PLAIN}
    for field in _MONEY:
        out[field] = _money(record.get(field, 0), currency)
    out["adjustment_amount"] = format_money(
        sum(
            (
                Decimal(line["amount"])
                for line in record.get("line_items") or []
                if line.get("kind") == "late_usage_adjustment"
            ),
            Decimal(0),
        ),
        currency,
    )
    # Money taken back (refunds) and still contested (disputes), and what was written off so that Stripe could charge
    # the amount due (three-decimal currencies): each is already reflected in amount_paid / amount_due.
    out["refunded_amount"] = _money(record.get("refunded_amount", 0), currency)
    out["disputed_amount"] = _money(record.get("disputed_amount", 0), currency)
    out["rounding_adjustment"] = _money(record.get("rounding_adjustment", 0), currency)
    out["total_discount"] = format_money(Decimal(0), currency)
    out["total_tax"] = format_money(Decimal(0), currency)
    out["billing_sequence"] = None if record.get("billing_sequence") is None else int(record["billing_sequence"])
    out["version"] = None if record.get("version") is None else int(record["version"])
    out["metadata"] = record.get("metadata") or {}
    out["line_items"] = [line_out(record, line) for line in record.get("line_items") or []]
    return out
