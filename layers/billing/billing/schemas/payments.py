"""HTTP schemas of card setup (Stripe Checkout in setup mode), saved payment methods, and payments (Flexprice
``CreatePaymentRequest``, ``PaymentResponse``, ``types.PaymentFilter``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from billing.domain.money import exponent, format_money, is_rounded, normalize_currency
from billing.schemas.common import CsvList, Edge, ListFilter, Metadata, Money
from billing.schemas.invoices import PaymentStatus


def _url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("must be an absolute http(s) URL")
    return value


def _cards() -> list[Literal["card"]]:
    return ["card"]


class SetupIntentCreate(BaseModel):
    """``POST /payments/customers/{customer_id}/setup/intent``; unknown fields are refused (a typo must not
    silently drop ``set_default``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    provider: Literal["stripe"] = "stripe"
    usage: Literal["off_session", "on_session"] = "off_session"
    payment_method_types: list[Literal["card"]] = Field(default_factory=_cards, min_length=1)
    success_url: str = Field(min_length=1, max_length=2048)
    cancel_url: str | None = Field(default=None, max_length=2048)
    set_default: bool = False
    metadata: Metadata | None = Field(default=None, max_length=20)

    @field_validator("provider", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("success_url")
    @classmethod
    def _success(cls, value: str) -> str:
        return _url(value)

    @field_validator("cancel_url")
    @classmethod
    def _cancel(cls, value: str | None) -> str | None:
        return _url(value) if value else None


# ---------------------------------------------------------------------------------------------- payments

PaymentMethodType = Literal["CARD", "ACH", "OFFLINE", "CREDITS", "PAYMENT_LINK", "UPI"]
DestinationType = Literal["INVOICE", "CUSTOMER"]
Gateway = Literal["stripe", "razorpay", "nomod", "moyasar", "paddle", "whop"]
_STATUSES = set(PaymentStatus.__args__)  # type: ignore[attr-defined]
_METHODS = set(PaymentMethodType.__args__)  # type: ignore[attr-defined]


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


class PaymentCreate(Edge):
    """``POST /payments``. ``gateway_options`` and other unknown fields are ignored."""

    destination_type: DestinationType
    destination_id: str = Field(min_length=1, max_length=100)
    payment_method_type: PaymentMethodType
    amount: Money
    currency: str = Field(min_length=3, max_length=3)
    payment_method_id: str | None = Field(default=None, min_length=1, max_length=255)
    payment_gateway: Gateway | None = None
    process_payment: bool = True
    save_card_and_make_default: bool = False
    success_url: str | None = Field(default=None, max_length=2048)
    cancel_url: str | None = Field(default=None, max_length=2048)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)
    metadata: Metadata | None = Field(default=None, max_length=20)

    @field_validator("destination_type", "payment_method_type", mode="before")
    @classmethod
    def _enums(cls, value: Any) -> Any:
        return _upper(value)

    @field_validator("payment_gateway", mode="before")
    @classmethod
    def _gateway(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return normalize_currency(value)

    @field_validator("amount")
    @classmethod
    def _positive(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value

    @field_validator("success_url", "cancel_url")
    @classmethod
    def _urls(cls, value: str | None) -> str | None:
        return _url(value) if value else None

    @model_validator(mode="after")
    def _exact(self) -> PaymentCreate:
        if not is_rounded(self.amount, self.currency):
            raise ValueError(
                f"amount {self.amount} has more decimals than {self.currency.upper()} allows "
                f"({exponent(self.currency)})"
            )
        return self

    def fingerprint(self) -> dict[str, Any]:
        """What makes two requests "the same" for ``idempotency_key`` (the amount compared as a number)."""
        fields = self.model_dump(mode="json", exclude={"idempotency_key", "amount"})
        fields["amount"] = format_money(self.amount, self.currency)
        return fields


class PaymentFilter(ListFilter):
    """``GET /payments`` query."""

    payment_ids: CsvList | None = None
    destination_id: str | None = None
    destination_type: str | None = None
    payment_status: CsvList | None = None
    payment_method_type: str | None = None
    payment_gateway: str | None = None
    currency: str | None = None
    gateway_payment_id: str | None = None
    gateway_tracking_id: str | None = None

    @field_validator("destination_type", "payment_method_type", mode="before")
    @classmethod
    def _enums(cls, value: Any) -> Any:
        return _upper(value)

    @field_validator("payment_status")
    @classmethod
    def _statuses(cls, value: list[str] | None) -> list[str] | None:
        upper = [s.upper() for s in value or []]
        for status in upper:
            if status not in _STATUSES:
                raise ValueError(f"unknown payment_status {status!r}")
        return upper or None

    @field_validator("payment_method_type")
    @classmethod
    def _method(cls, value: str | None) -> str | None:
        if value is not None and value not in _METHODS:
            raise ValueError(f"unknown payment_method_type {value!r}")
        return value

    def keep(self, record: dict[str, Any]) -> bool:
        if not super().keep({"status": "published", **record}):
            return False
        checks = (
            (self.destination_id, record.get("destination_id")),
            (self.destination_type, record.get("destination_type")),
            (self.payment_method_type, record.get("payment_method_type")),
            (self.payment_gateway and self.payment_gateway.lower(), record.get("payment_gateway")),
            (self.currency and self.currency.lower(), record.get("currency")),
            (self.gateway_payment_id, record.get("gateway_payment_id")),
            (self.gateway_tracking_id, record.get("gateway_tracking_id")),
        )
        if any(wanted is not None and wanted != actual for wanted, actual in checks):
            return False
        if self.payment_ids and record["id"] not in self.payment_ids:
            return False
        return not (self.payment_status and record.get("payment_status") not in self.payment_status)


_PAYMENT_PLAIN = (
    "id",
    "idempotency_key",
    "destination_type",
    "destination_id",
    "payment_method_type",
    "payment_method_id",
    "payment_gateway",
    "gateway_payment_id",
    "gateway_tracking_id",
    "payment_url",
    "currency",
    "payment_status",
    "error_message",
    "invoice_number",
    "succeeded_at",
    "failed_at",
    "refunded_at",
    "voided_at",
    "tenant_id",
    "environment_id",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
)


def payment_out(record: dict[str, Any]) -> dict[str, Any]:
    """Flexprice ``PaymentResponse``: money as a decimal string with the currency's decimals."""
    out: dict[str, Any] = {field: record.get(field) for field in _PAYMENT_PLAIN}
    out["amount"] = format_money(Decimal(record["amount"]), record["currency"])
    out["metadata"] = record.get("metadata") or {}
    out["gateway_metadata"] = record.get("gateway_metadata") or {}
    out["save_card_and_make_default"] = bool(record.get("save_card_and_make_default"))
    out["track_attempts"] = False
    out["attempts"] = []
    out["status"] = record.get("status") or "published"
    return out
