"""HTTP schemas of coupons (Flexprice ``CreateCouponRequest``, ``UpdateCouponRequest``, ``types.CouponFilter``,
``CouponResponse``, ``CouponAssociationResponse``, ``SubscriptionCouponInput``, ``SubModifyCouponParams``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from billing.domain.money import format_money, is_supported
from billing.schemas.common import CsvList, DecimalStr, Edge, ListFilter, Metadata, Money, Timestamp

CouponType = Literal["fixed", "percentage"]
Cadence = Literal["once", "repeated", "forever"]
MAX_COUPONS_PER_SUBSCRIPTION = 10


def _blank(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


class CouponCreate(Edge):
    name: str = Field(min_length=1, max_length=255)
    type: CouponType
    cadence: Cadence
    amount_off: Money | None = None
    percentage_off: DecimalStr | None = None
    currency: str | None = None
    duration_in_periods: int | None = Field(default=None, ge=1, le=1000)
    max_redemptions: int | None = Field(default=None, ge=1)
    redeem_after: Timestamp | None = None
    redeem_before: Timestamp | None = None
    coupon_code: str | None = Field(default=None, max_length=100)
    rules: dict[str, Any] | None = None
    metadata: Metadata | None = None

    @field_validator("type", "cadence", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("currency", "coupon_code", "amount_off", "percentage_off", mode="before")
    @classmethod
    def _blanks(cls, value: Any) -> Any:
        return _blank(value)

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        if value is not None and not is_supported(value):
            raise ValueError("must be an ISO 4217 currency code such as 'usd'")
        return value.strip().lower() if value else None

    @model_validator(mode="after")
    def _terms(self) -> CouponCreate:
        if self.type == "fixed":
            if self.amount_off is None or self.amount_off <= 0:
                raise ValueError("a fixed coupon needs a positive amount_off")
            if self.currency is None:
                raise ValueError("a fixed coupon needs a currency")
            if self.percentage_off is not None:
                raise ValueError("a fixed coupon takes amount_off, not percentage_off")
        else:
            if self.percentage_off is None or not Decimal(0) < self.percentage_off <= Decimal(100):
                raise ValueError("a percentage coupon needs percentage_off above 0 and at most 100")
            if self.amount_off is not None:
                raise ValueError("a percentage coupon takes percentage_off, not amount_off")
        if self.cadence == "repeated" and self.duration_in_periods is None:
            raise ValueError("a repeated coupon needs duration_in_periods")
        if self.cadence != "repeated" and self.duration_in_periods is not None:
            raise ValueError("duration_in_periods applies to repeated coupons only")
        if self.redeem_after and self.redeem_before and self.redeem_after >= self.redeem_before:
            raise ValueError("redeem_before must be after redeem_after")
        if self.rules:
            raise ValueError("coupon rules are not supported; attach the coupon to a line item instead")
        return self


class CouponUpdate(Edge):
    """``UpdateCouponRequest``: a coupon's terms never change once it may have been redeemed."""

    name: str | None = Field(default=None, min_length=1, max_length=255)
    metadata: Metadata | None = None


class CouponFilter(ListFilter):
    coupon_ids: CsvList | None = None
    coupon_codes: CsvList | None = None
    expand: str | None = None
    sort: list[Any] | None = None

    @field_validator("cursor")
    @classmethod
    def _no_cursor(cls, value: str | None) -> str | None:
        if value:
            raise ValueError("coupons are paged by offset; cursor paging is not offered for coupons")
        return value

    def keep(self, record: dict[str, Any]) -> bool:
        if not super().keep(record):
            return False
        if self.coupon_ids and record["id"] not in self.coupon_ids:
            return False
        return not (self.coupon_codes and record.get("coupon_code") not in self.coupon_codes)


class SubscriptionCouponInput(Edge):
    coupon_code: str = Field(min_length=1, max_length=100)
    price_id: str | None = Field(default=None, max_length=100)
    start_date: Timestamp | None = None
    end_date: Timestamp | None = None

    @field_validator("price_id", mode="before")
    @classmethod
    def _blank_price(cls, value: Any) -> Any:
        return _blank(value)


class CouponModify(Edge):
    """``SubModifyCouponParams`` (``POST /subscriptions/{id}/modify/execute`` with ``type: coupon``)."""

    action: Literal["add", "remove"]
    coupon_code: str | None = Field(default=None, max_length=100)
    coupon_association_id: str | None = Field(default=None, max_length=100)
    subscription_line_item_id: str | None = Field(default=None, max_length=100)
    start_date: Timestamp | None = None
    end_date: Timestamp | None = None

    @model_validator(mode="after")
    def _needs(self) -> CouponModify:
        if self.action == "add" and not self.coupon_code:
            raise ValueError("action add needs coupon_code")
        if self.action == "remove" and not self.coupon_association_id:
            raise ValueError("action remove needs coupon_association_id")
        return self


RESPONSE_FIELDS = (
    "id",
    "name",
    "type",
    "cadence",
    "amount_off",
    "percentage_off",
    "currency",
    "duration_in_periods",
    "max_redemptions",
    "total_redemptions",
    "redeem_after",
    "redeem_before",
    "coupon_code",
    "rules",
    "metadata",
    "tenant_id",
    "environment_id",
    "status",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
)


def coupon_out(record: dict[str, Any]) -> dict[str, Any]:
    out = {field: record.get(field) for field in RESPONSE_FIELDS}
    if record.get("amount_off") is not None:
        out["amount_off"] = format_money(Decimal(str(record["amount_off"])), record["currency"])
    if record.get("percentage_off") is not None:
        out["percentage_off"] = format(Decimal(str(record["percentage_off"])), "f")
    for field in ("duration_in_periods", "max_redemptions", "total_redemptions"):
        out[field] = None if record.get(field) is None else int(record[field])
    out["metadata"] = record.get("metadata") or {}
    return out


ASSOCIATION_FIELDS = (
    "id",
    "coupon_id",
    "subscription_id",
    "subscription_line_item_id",
    "price_id",
    "start_date",
    "end_date",
    "metadata",
    "tenant_id",
    "environment_id",
    "status",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
)


def association_out(record: dict[str, Any]) -> dict[str, Any]:
    out = {field: record.get(field) for field in ASSOCIATION_FIELDS}
    out["metadata"] = record.get("metadata") or {}
    coupon = record.get("coupon")
    out["coupon"] = coupon_out(coupon) if coupon else None
    return out
