"""HTTP schemas of wallets (Flexprice ``CreateWalletRequest``, ``UpdateWalletRequest``, ``TopUpWalletRequest``,
``WalletResponse``, ``WalletBalanceResponse``, ``WalletTransactionResponse``, ``types.WalletFilter``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from billing.domain.money import format_money, is_supported
from billing.schemas.common import CsvList, DecimalStr, Edge, Metadata, Money, Timestamp

Reason = Literal[
    "FREE_CREDIT_GRANT", "PURCHASED_CREDIT_DIRECT", "PURCHASED_CREDIT_INVOICED", "SUBSCRIPTION_CREDIT_GRANT"
]


def _blank(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _rate(value: Decimal | None) -> Decimal | None:
    if value is not None and value <= 0:
        raise ValueError("must be greater than 0")
    return value


class WalletCreate(Edge):
    currency: str
    customer_id: str | None = Field(default=None, max_length=100)
    external_customer_id: str | None = Field(default=None, max_length=255)
    name: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=1000)
    wallet_type: Literal["PRE_PAID"] = "PRE_PAID"
    conversion_rate: DecimalStr | None = None
    topup_conversion_rate: DecimalStr | None = None
    initial_credits_to_load: Money | None = None
    initial_credits_expiry_date_utc: Timestamp | None = None
    metadata: Metadata | None = None

    @field_validator("customer_id", "external_customer_id", "conversion_rate", "topup_conversion_rate", mode="before")
    @classmethod
    def _blanks(cls, value: Any) -> Any:
        return _blank(value)

    @field_validator("wallet_type", mode="before")
    @classmethod
    def _type(cls, value: Any) -> Any:
        return _blank(value) or "PRE_PAID"

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not is_supported(value):
            raise ValueError("must be an ISO 4217 currency code such as 'usd'")
        return value.strip().lower()

    _rates = field_validator("conversion_rate", "topup_conversion_rate")(_rate)

    @model_validator(mode="after")
    def _customer(self) -> WalletCreate:
        if not self.customer_id and not self.external_customer_id:
            raise ValueError("customer_id or external_customer_id is required")
        return self


class WalletUpdate(Edge):
    name: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=1000)
    metadata: Metadata | None = None


class TopUp(Edge):
    transaction_reason: Reason
    amount: Money | None = None
    credits_to_add: Money | None = None
    expiry_date_utc: Timestamp | None = None
    priority: int | None = Field(default=None, ge=0, le=1000)
    idempotency_key: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=1000)
    metadata: Metadata | None = None

    @field_validator("amount", "credits_to_add", "idempotency_key", mode="before")
    @classmethod
    def _blanks(cls, value: Any) -> Any:
        return _blank(value)

    @model_validator(mode="after")
    def _one(self) -> TopUp:
        if (self.amount is None) == (self.credits_to_add is None):
            raise ValueError("give either amount or credits_to_add")
        if (self.amount if self.amount is not None else self.credits_to_add) == 0:
            raise ValueError("a top-up must add more than 0")
        return self


class WalletFilter(Edge):
    wallet_ids: CsvList | None = None
    status: Literal["active", "frozen", "closed"] | None = None
    limit: int = Field(default=50, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)
    expand: str | None = None
    order: str | None = None
    sort: str | None = None
    alert_enabled: bool | None = None


class TransactionFilter(Edge):
    limit: int = Field(default=50, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)
    type: Literal["credit", "debit"] | None = None
    transaction_reason: str | None = None


WALLET_FIELDS = (
    "id",
    "customer_id",
    "currency",
    "name",
    "description",
    "wallet_type",
    "wallet_status",
    "metadata",
    "tenant_id",
    "environment_id",
    "status",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
)


def _num(value: Any) -> str:
    return format(Decimal(str(value)).normalize() + 0, "f") if value is not None else "0"


def wallet_out(record: dict[str, Any]) -> dict[str, Any]:
    """``WalletResponse``; ``record`` carries ``live_credits`` (credits alive now, computed by the service)."""
    out = {field: record.get(field) for field in WALLET_FIELDS}
    rate = Decimal(str(record["conversion_rate"]))
    credits = Decimal(str(record.get("live_credits", record.get("credit_balance", 0))))
    out["conversion_rate"] = _num(rate)
    out["topup_conversion_rate"] = _num(record.get("topup_conversion_rate") or rate)
    out["credit_balance"] = _num(credits)
    out["real_time_credit_balance"] = _num(credits)
    out["balance"] = format_money(credits * rate, record["currency"])
    out["real_time_balance"] = out["balance"]
    out["metadata"] = record.get("metadata") or {}
    return out


TRANSACTION_FIELDS = (
    "id",
    "wallet_id",
    "customer_id",
    "type",
    "transaction_reason",
    "transaction_status",
    "reference_type",
    "reference_id",
    "description",
    "idempotency_key",
    "priority",
    "expiry_date",
    "currency",
    "metadata",
    "tenant_id",
    "environment_id",
    "status",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
)


def transaction_out(record: dict[str, Any]) -> dict[str, Any]:
    out = {field: record.get(field) for field in TRANSACTION_FIELDS}
    for field in ("credit_amount", "credit_balance_before", "credit_balance_after", "credits_available"):
        out[field] = _num(record.get(field))
    out["conversion_rate"] = _num(record.get("conversion_rate"))
    out["amount"] = format_money(Decimal(str(record.get("amount") or 0)), record["currency"])
    out["priority"] = None if record.get("priority") is None else int(record["priority"])
    out["metadata"] = record.get("metadata") or {}
    return out
