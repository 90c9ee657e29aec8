"""Pieces shared by the HTTP schemas: list queries, money strings, metadata, timestamps."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator

from billing.timeutil import parse_iso

MAX_LIMIT = 1000
DEFAULT_LIMIT = 50


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("must be a decimal string")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError('must be a decimal string such as "12.50"') from None
    else:
        raise ValueError('must be a decimal string such as "12.50"')
    if not result.is_finite():
        raise ValueError("must be a finite decimal")
    return result


DecimalStr = Annotated[Decimal, BeforeValidator(_decimal)]
"""A decimal sent as a JSON string (the contract) or a JSON number (parsed without floats)."""


# 15 integer and 12 fractional digits stay within Decimal's default 28-digit context: no silent rounding.
MAX_FRACTION_DIGITS = 12
MAX_MONEY = Decimal(10) ** 15


def canonical(value: Decimal) -> Decimal:
    """One representation per amount (``12.50`` → ``12.5``, ``-0`` → ``0``), as DynamoDB stores numbers."""
    reduced = value.normalize() + Decimal(0)
    exponent = reduced.as_tuple().exponent
    return reduced.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else reduced


def _money(value: Decimal) -> Decimal:
    if value.is_signed() and value != 0:
        raise ValueError("must not be negative")
    if value >= MAX_MONEY:
        raise ValueError(f"must be less than {MAX_MONEY:f}")
    # Counted on the digits as sent: normalize() would round a long input to 28 digits first.
    _, digits, exponent = value.as_tuple()
    significant = "".join(map(str, digits)).rstrip("0")
    if isinstance(exponent, int) and significant and len(digits) - len(significant) + exponent < -MAX_FRACTION_DIGITS:
        raise ValueError(f"must have at most {MAX_FRACTION_DIGITS} decimal places")
    return canonical(value)


Money = Annotated[DecimalStr, AfterValidator(_money)]
"""A non-negative, finite amount in main currency units below ``MAX_MONEY`` (10^15) with at most 12 decimal places,
sent as a decimal string (or a JSON number). Every money field of every request is of this type."""


def _timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 timestamp")
    try:
        return parse_iso(value)
    except (ValueError, OverflowError):  # OverflowError: an offset that moves the instant out of years 1..9999
        raise ValueError("must be an RFC 3339 timestamp such as 2026-01-31T00:00:00Z") from None


Timestamp = Annotated[datetime, BeforeValidator(_timestamp)]

# Stripe's limits on metadata (it reaches Stripe with customers and invoices): 50 keys, keys of up to 40 characters,
# values of up to 500. They also keep every entity far below DynamoDB's 400 KB item size.
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_CHARS = 40
MAX_METADATA_VALUE_CHARS = 500
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_METADATA_KEY_CHARS)]
MetadataValue = Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE_CHARS)]
Metadata = Annotated[dict[MetadataKey, MetadataValue], Field(max_length=MAX_METADATA_KEYS)]
"""Free-form string pairs; keys are non-empty (DynamoDB and Stripe both refuse empty map keys)."""
Status = Literal["published", "archived", "deleted"]


def money(value: Decimal | None) -> str | None:
    """Money in the API: a decimal string in main currency units, without exponent notation."""
    if value is None:
        return None
    text = format(value, "f")
    return text


class Edge(BaseModel):
    """Base of every request model: unknown fields are ignored, strings trimmed."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


def _csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], BeforeValidator(_csv)]


class ListFilter(Edge):
    """``limit``/``offset``/``order``/``status`` plus a created-at range: GET query or search body."""

    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    offset: int = Field(default=0, ge=0)
    order: Literal["asc", "desc"] = "desc"
    status: Status | None = None
    start_time: Timestamp | None = None
    end_time: Timestamp | None = None
    # Flexprice's generic filter conditions. Refused when present rather than ignored: a filter that is asked for
    # and not applied would answer records the caller meant to exclude. An empty list is accepted.
    filters: list[Any] | None = None

    @field_validator("filters")
    @classmethod
    def _no_conditions(cls, value: list[Any] | None) -> list[Any] | None:
        if value:
            raise ValueError("filter conditions are not supported; filter with the named fields of this search")
        return value

    @field_validator("order", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    def keep(self, record: dict[str, Any]) -> bool:
        """Status (default: published only) and created-at range."""
        wanted = self.status or "published"
        if record.get("status") != wanted:
            return False
        created = record.get("created_at")
        if created and (self.start_time or self.end_time):
            at = parse_iso(created)
            if self.start_time and at < self.start_time:
                return False
            if self.end_time and at > self.end_time:
                return False
        return True

    def arrange(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Records arrive newest first; ``asc`` reverses them."""
        return list(reversed(records)) if self.order == "asc" else records
