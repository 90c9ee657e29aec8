"""HTTP schemas of taxes (Flexprice ``CreateTaxRateRequest``, ``UpdateTaxRateRequest``, ``TaxRateResponse``,
``CreateTaxAssociationRequest``, ``TaxAssociationUpdateRequest``, ``TaxAssociationResponse``, ``TaxRateOverride``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from billing.domain.money import is_supported
from billing.schemas.common import CsvList, DecimalStr, Edge, ListFilter, Metadata, Money, Timestamp

TaxType = Literal["percentage", "fixed"]
Scope = Literal["INTERNAL", "EXTERNAL", "ONETIME"]
EntityType = Literal["customer", "subscription", "tenant"]
MAX_TAXES_PER_ENTITY = 10


def _blank(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _currency(value: str | None) -> str | None:
    if value is not None and not is_supported(value):
        raise ValueError("must be an ISO 4217 currency code such as 'usd'")
    return value.strip().lower() if value else None


class TaxRateCreate(Edge):
    code: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=1000)
    tax_rate_type: TaxType = "percentage"
    percentage_value: DecimalStr | None = None
    fixed_value: Money | None = None
    scope: Scope = "INTERNAL"
    metadata: Metadata | None = None
    # Not in Flexprice's request: taxes here are exclusive (docs/billing-math.md); an inclusive rate is refused.
    inclusive: bool | None = None

    @field_validator("tax_rate_type", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        value = _blank(value)
        return "percentage" if value is None else value.strip().lower() if isinstance(value, str) else value

    @field_validator("scope", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        value = _blank(value)
        return "INTERNAL" if value is None else value.strip().upper() if isinstance(value, str) else value

    @field_validator("percentage_value", "fixed_value", mode="before")
    @classmethod
    def _blanks(cls, value: Any) -> Any:
        return _blank(value)

    @model_validator(mode="after")
    def _values(self) -> TaxRateCreate:
        if self.inclusive:
            raise ValueError("inclusive tax rates are not supported: taxes are added on top of the price")
        if self.tax_rate_type == "percentage":
            if self.percentage_value is None or not Decimal(0) <= self.percentage_value <= Decimal(100):
                raise ValueError("a percentage tax rate needs percentage_value between 0 and 100")
            if self.fixed_value is not None:
                raise ValueError("a percentage tax rate takes percentage_value, not fixed_value")
        else:
            if self.fixed_value is None:
                raise ValueError("a fixed tax rate needs fixed_value")
            if self.percentage_value is not None:
                raise ValueError("a fixed tax rate takes fixed_value, not percentage_value")
        return self


class TaxRateUpdate(Edge):
    """``UpdateTaxRateRequest``: the rate's value never changes (invoices reference it); make a new rate."""

    code: str | None = Field(default=None, min_length=1, max_length=100)
    name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=1000)
    metadata: Metadata | None = None
    tax_rate_status: Literal["ACTIVE", "INACTIVE"] | None = None


class TaxRateFilter(ListFilter):
    taxrate_ids: CsvList | None = None
    taxrate_codes: CsvList | None = None
    scope: Scope | None = None
    expand: str | None = None

    def keep(self, record: dict[str, Any]) -> bool:
        if not super().keep(record):
            return False
        if self.taxrate_ids and record["id"] not in self.taxrate_ids:
            return False
        if self.taxrate_codes and record.get("code") not in self.taxrate_codes:
            return False
        return not (self.scope and record.get("scope") != self.scope)


class TaxRateOverride(Edge):
    tax_rate_code: str = Field(min_length=1, max_length=100)
    currency: str
    priority: int = Field(default=0, ge=0, le=1000)
    auto_apply: bool = True
    metadata: Metadata | None = None

    _check_currency = field_validator("currency")(_currency)


class TaxAssociationCreate(Edge):
    tax_rate_code: str = Field(min_length=1, max_length=100)
    entity_type: EntityType = "tenant"
    entity_id: str | None = Field(default=None, max_length=100)
    external_customer_id: str | None = Field(default=None, max_length=255)
    currency: str | None = None
    priority: int = Field(default=0, ge=0, le=1000)
    auto_apply: bool = True
    start_date: Timestamp | None = None
    end_date: Timestamp | None = None
    metadata: Metadata | None = None

    @field_validator("entity_type", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        value = _blank(value)
        return "tenant" if value is None else value.strip().lower() if isinstance(value, str) else value

    @field_validator("entity_id", "external_customer_id", "currency", mode="before")
    @classmethod
    def _blanks(cls, value: Any) -> Any:
        return _blank(value)

    _check_currency = field_validator("currency")(_currency)

    @model_validator(mode="after")
    def _dates(self) -> TaxAssociationCreate:
        if self.start_date and self.end_date and self.end_date <= self.start_date:
            raise ValueError("end_date must be after start_date")
        if self.entity_type != "tenant" and not (self.entity_id or self.external_customer_id):
            raise ValueError(f"a {self.entity_type} association needs entity_id")
        return self


class TaxAssociationUpdate(Edge):
    auto_apply: bool | None = None
    priority: int | None = Field(default=None, ge=0, le=1000)
    metadata: Metadata | None = None


class TaxAssociationFilter(Edge):
    entity_type: EntityType | None = None
    entity_id: str | None = None
    external_customer_id: str | None = None
    tax_rate_id: str | None = None
    limit: int = Field(default=50, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


RATE_FIELDS = (
    "id",
    "code",
    "name",
    "description",
    "tax_rate_type",
    "percentage_value",
    "fixed_value",
    "scope",
    "tax_rate_status",
    "metadata",
    "tenant_id",
    "environment_id",
    "status",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
)


def tax_rate_out(record: dict[str, Any]) -> dict[str, Any]:
    out = {field: record.get(field) for field in RATE_FIELDS}
    for field in ("percentage_value", "fixed_value"):
        if record.get(field) is not None:
            out[field] = format(Decimal(str(record[field])), "f")
    out["metadata"] = record.get("metadata") or {}
    return out


ASSOCIATION_FIELDS = (
    "id",
    "tax_rate_id",
    "entity_type",
    "entity_id",
    "currency",
    "priority",
    "auto_apply",
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


def tax_association_out(record: dict[str, Any]) -> dict[str, Any]:
    out = {field: record.get(field) for field in ASSOCIATION_FIELDS}
    out["priority"] = int(record.get("priority") or 0)
    out["metadata"] = record.get("metadata") or {}
    rate = record.get("tax_rate")
    out["tax_rate"] = tax_rate_out(rate) if rate else None
    return out
