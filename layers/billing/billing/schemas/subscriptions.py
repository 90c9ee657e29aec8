"""HTTP schemas of subscriptions (Flexprice ``CreateSubscriptionRequest``, ``SubscriptionResponse``,
``types.SubscriptionFilter``, ``CancelSubscriptionRequest``, ``GetUsageBySubscriptionRequest``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt, field_validator, model_validator

from billing.domain.money import is_supported
from billing.schemas.common import CsvList, Edge, ListFilter, Metadata, Timestamp
from billing.schemas.prices import amount_text, currency_symbol, tier_out
from billing.timeutil import iso, parse_iso

BillingPeriod = Literal["DAILY", "WEEKLY", "MONTHLY", "QUARTERLY", "HALF_YEARLY", "ANNUAL"]
BillingCycle = Literal["anniversary", "calendar"]
CollectionMethod = Literal["charge_automatically", "send_invoice"]
PaymentBehavior = Literal["allow_incomplete", "default_incomplete", "error_if_incomplete", "default_active"]
SubscriptionStatus = Literal["active", "paused", "cancelled", "incomplete", "trialing", "draft"]
CancellationType = Literal["immediate", "end_of_period", "scheduled_date"]


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


class SubscriptionCreate(Edge):
    customer_id: str | None = Field(default=None, max_length=100)
    external_customer_id: str | None = Field(default=None, max_length=255)
    plan_id: str = Field(min_length=1, max_length=100)
    currency: str
    billing_period: BillingPeriod
    billing_period_count: Annotated[StrictInt, Field(ge=1, le=1000)] = 1
    billing_cadence: Literal["RECURRING"] = "RECURRING"
    start_date: Timestamp | None = None
    billing_cycle: BillingCycle = "anniversary"
    collection_method: CollectionMethod = "charge_automatically"
    payment_behavior: PaymentBehavior = "default_active"
    lookup_key: str | None = Field(default=None, max_length=255)
    metadata: Metadata | None = None

    @field_validator(
        "customer_id",
        "external_customer_id",
        "billing_cycle",
        "collection_method",
        "payment_behavior",
        "billing_cadence",
        "lookup_key",
        mode="before",
    )
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return _blank_is_none(value)

    @field_validator("billing_period", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("billing_period_count", mode="before")
    @classmethod
    def _count_default(cls, value: Any) -> Any:
        """As Flexprice: an absent, null or 0 period count is 1."""
        return 1 if value is None or (value == 0 and not isinstance(value, bool)) else value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not is_supported(value):
            raise ValueError("must be an ISO 4217 currency code such as 'usd'")
        return value.strip().lower()

    @model_validator(mode="after")
    def _customer(self) -> SubscriptionCreate:
        if not self.customer_id and not self.external_customer_id:
            raise ValueError("customer_id or external_customer_id is required")
        # Absent optional enums fall back to their defaults (Go clients send "").
        self.billing_cycle = self.billing_cycle or "anniversary"
        self.collection_method = self.collection_method or "charge_automatically"
        self.payment_behavior = self.payment_behavior or "default_active"
        return self


class SubscriptionCancel(Edge):
    cancellation_type: CancellationType
    reason: str | None = Field(default=None, max_length=1000)
    cancel_at: Timestamp | None = None
    cancel_immediately_invoice_policy: Literal["generate_invoice", "skip"] | None = None

    @model_validator(mode="after")
    def _scheduled(self) -> SubscriptionCancel:
        if self.cancellation_type == "scheduled_date":
            raise ValueError("cancellation_type scheduled_date is not supported: use immediate or end_of_period")
        return self


class SubscriptionFilter(ListFilter):
    subscription_ids: CsvList | None = None
    customer_id: str | None = None
    customer_ids: CsvList | None = None
    external_customer_id: str | None = None
    plan_id: str | None = None
    subscription_status: CsvList | None = None
    billing_period: CsvList | None = None

    @field_validator("subscription_status")
    @classmethod
    def _statuses(cls, value: list[str] | None) -> list[str] | None:
        allowed = {"active", "paused", "cancelled", "incomplete", "trialing", "draft"}
        for status in value or []:
            if status not in allowed:
                raise ValueError(f"unknown subscription_status {status!r}")
        return value

    def keep(self, record: dict[str, Any]) -> bool:
        if not super().keep(record):
            return False
        if self.subscription_ids and record["id"] not in self.subscription_ids:
            return False
        if self.customer_id and record["customer_id"] != self.customer_id:
            return False
        if self.customer_ids and record["customer_id"] not in self.customer_ids:
            return False
        if self.external_customer_id and record.get("external_customer_id") != self.external_customer_id:
            return False
        if self.plan_id and record["plan_id"] != self.plan_id:
            return False
        if self.subscription_status and record["subscription_status"] not in self.subscription_status:
            return False
        return not (self.billing_period and record["billing_period"] not in self.billing_period)


class SubscriptionUsageRequest(Edge):
    subscription_id: str = Field(min_length=1, max_length=100)
    start_time: Timestamp | None = None
    end_time: Timestamp | None = None


def _price_out(price: dict[str, Any]) -> dict[str, Any]:
    currency = price["currency"]
    amount = price.get("amount")
    return {
        "id": price["id"],
        "plan_id": price.get("plan_id"),
        "entity_type": price.get("entity_type"),
        "entity_id": price.get("entity_id"),
        "type": price["type"],
        "billing_model": price["billing_model"],
        "tier_mode": price.get("tier_mode"),
        # Amounts are written as on the price itself (GET /prices/{id}): the currency's digits at least, every
        # digit of a sub-cent price kept ("0.0125" shows as "$0.0125", never rounded to "0.01").
        "tiers": [{"flat_amount": None, **tier_out(t, currency)} for t in price.get("tiers") or []],
        "amount": amount_text(amount, currency),
        "display_amount": None if amount is None else f"{currency_symbol(currency)}{amount_text(amount, currency)}",
        "currency": currency,
        "billing_period": price["billing_period"],
        "billing_period_count": price["billing_period_count"],
        "billing_cadence": price.get("billing_cadence", "RECURRING"),
        "invoice_cadence": price["invoice_cadence"],
        "meter_id": price.get("meter_id"),
        "transform_quantity": price.get("transform_quantity"),
        "price_unit_type": price.get("price_unit_type", "FIAT"),
    }


def line_item_out(sub: dict[str, Any], line: dict[str, Any]) -> dict[str, Any]:
    price = line["price"]
    return {
        "id": line["id"],
        "subscription_id": sub["id"],
        "customer_id": sub["customer_id"],
        "entity_id": sub["plan_id"],
        "entity_type": "plan",
        "plan_display_name": line.get("plan_display_name"),
        "price_id": price["id"],
        "price_type": price["type"],
        "meter_id": price.get("meter_id"),
        "meter_display_name": line.get("meter_display_name"),
        "display_name": line.get("display_name"),
        "quantity": "1" if price["type"] == "FIXED" else "0",
        "currency": sub["currency"],
        "billing_period": price["billing_period"],
        "billing_period_count": price["billing_period_count"],
        "invoice_cadence": price["invoice_cadence"],
        "start_date": sub["start_date"],
        "end_date": None,
        "price": _price_out(price),
        "status": "published",
        "tenant_id": sub["tenant_id"],
        "environment_id": sub["environment_id"],
        "created_at": sub["created_at"],
        "updated_at": sub["updated_at"],
    }


RESPONSE_FIELDS = (
    "id",
    "customer_id",
    "plan_id",
    "currency",
    "subscription_status",
    "billing_period",
    "billing_period_count",
    "billing_cadence",
    "billing_cycle",
    "billing_anchor",
    "start_date",
    "end_date",
    "current_period_start",
    "current_period_end",
    "collection_method",
    "payment_behavior",
    "cancel_at_period_end",
    "cancel_at",
    "cancelled_at",
    "lookup_key",
    "timezone",
    "metadata",
    "tenant_id",
    "environment_id",
    "status",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "version",
)


def subscription_out(record: dict[str, Any]) -> dict[str, Any]:
    out = {field: record.get(field) for field in RESPONSE_FIELDS}
    out["billing_period_count"] = int(record["billing_period_count"])
    out["version"] = int(record["version"])
    out["metadata"] = record.get("metadata") or {}
    out["cancel_at_period_end"] = bool(record.get("cancel_at_period_end"))
    out["line_items"] = [line_item_out(record, line) for line in record.get("line_items") or []]
    return out


def cancel_out(record: dict[str, Any], cancellation_type: str, reason: str | None) -> dict[str, Any]:
    effective = record.get("cancel_at") or record.get("cancelled_at")
    return {
        "subscription_id": record["id"],
        "cancellation_type": cancellation_type,
        "effective_date": effective,
        "status": record["subscription_status"],
        "reason": reason,
        "processed_at": record["updated_at"],
        "total_credit_amount": "0",
        "proration_details": [],
        "message": (
            "subscription cancelled"
            if cancellation_type == "immediate"
            else f"subscription will be cancelled at {effective}"
        ),
    }


def normalize_time(value: str) -> str:
    return iso(parse_iso(value))
