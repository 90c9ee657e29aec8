"""HTTP schemas of meters (Flexprice ``CreateMeterRequest``, ``meter.Aggregation``, ``meter.Filter``,
``MeterResponse``).

Meters are created only inline in ``POST /features`` and are immutable afterwards, so there is no update
schema. Aggregation rules (the contract's):

- ``type`` is one of ``types.AggregationType``;
- every type but ``COUNT`` needs ``field`` (the key in the event's ``properties``);
- ``SUM_WITH_MULTIPLIER`` needs a positive decimal ``multiplier`` (a string such as ``"1000"`` or a JSON
  number); every other type rejects a multiplier;
- ``reset_usage`` is ``BILLING_PERIOD`` (default) or ``NEVER``;
- filter keys are non-empty and unique, each with a non-empty list of non-empty string values.

Aggregation fields of Flexprice this product does not evaluate (``expression``, ``bucket_size``,
``group_by``) are ignored like any unknown field.
"""

from __future__ import annotations

from decimal import Context, Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationInfo, field_validator

from billing.schemas.common import CsvList, DecimalStr, Edge, ListFilter

AggregationType = Literal["COUNT", "SUM", "AVG", "COUNT_UNIQUE", "LATEST", "SUM_WITH_MULTIPLIER", "MAX", "WEIGHTED_SUM"]
ResetUsage = Literal["BILLING_PERIOD", "NEVER"]

MAX_FILTERS = 50
MAX_FILTER_VALUES = 1000
# DynamoDB stores numbers with at most 38 significant digits; a multiplier outside 1e-30..1e30 is a mistake.
MAX_MULTIPLIER_DIGITS = 38
MULTIPLIER_EXPONENTS = range(-30, 31)
_WIDE = Context(prec=200)

FilterValue = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


def _normalized(value: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent notation (``1000`` stays ``1000``)."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1), context=_WIDE)
    return value.normalize(_WIDE)


class AggregationIn(Edge):
    type: AggregationType
    field: str | None = Field(default=None, max_length=255, validate_default=True)
    multiplier: DecimalStr | None = Field(default=None, validate_default=True)

    @field_validator("field", mode="before")
    @classmethod
    def _blank_field(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("field")
    @classmethod
    def _field_rule(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("type")
        if kind is not None and kind != "COUNT" and not value:
            raise ValueError(f"field is required for {kind} aggregation (only COUNT works without one)")
        return value

    @field_validator("multiplier", mode="before")
    @classmethod
    def _blank_multiplier(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("multiplier")
    @classmethod
    def _multiplier_rule(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        kind = info.data.get("type")
        if kind is None:
            return value
        if kind == "SUM_WITH_MULTIPLIER":
            if value is None:
                raise ValueError('multiplier is required for SUM_WITH_MULTIPLIER, e.g. "1000"')
            if value <= 0:
                raise ValueError("multiplier must be a positive decimal")
            if value.adjusted() not in MULTIPLIER_EXPONENTS:
                raise ValueError("multiplier is out of range (1e-30 to 1e30)")
            value = _normalized(value)
            if len(value.as_tuple().digits) > MAX_MULTIPLIER_DIGITS:
                raise ValueError(f"multiplier must have at most {MAX_MULTIPLIER_DIGITS} significant digits")
            return value
        if value is not None:
            raise ValueError(f"multiplier is only allowed with SUM_WITH_MULTIPLIER, not {kind}")
        return None


class FilterIn(Edge):
    key: str = Field(min_length=1, max_length=255)
    values: list[FilterValue] = Field(min_length=1, max_length=MAX_FILTER_VALUES)


def check_filters(value: list[FilterIn] | None) -> list[FilterIn] | None:
    """Filter keys are unique, and the whole list stays small enough for one DynamoDB item."""
    if not value:
        return value
    seen: set[str] = set()
    for item in value:
        if item.key in seen:
            raise ValueError(f"filter key {item.key!r} appears more than once")
        seen.add(item.key)
    if sum(len(item.values) for item in value) > MAX_FILTER_VALUES:
        raise ValueError(f"filters may hold at most {MAX_FILTER_VALUES} values in all")
    return value


def filters_record(value: list[FilterIn] | None) -> list[dict[str, Any]]:
    """Filters as stored: ``[{key, values}]`` (``[]`` when none), values in the order given."""
    return [{"key": f.key, "values": list(dict.fromkeys(f.values))} for f in value or []]


class MeterCreate(Edge):
    # Flexprice requires a name; here it defaults to the feature's name when the meter is inline.
    name: str | None = Field(default=None, min_length=1, max_length=255)
    event_name: str = Field(min_length=1, max_length=255)
    aggregation: AggregationIn
    filters: list[FilterIn] | None = Field(default=None, max_length=MAX_FILTERS)
    reset_usage: ResetUsage = "BILLING_PERIOD"

    @field_validator("filters")
    @classmethod
    def _filters(cls, value: list[FilterIn] | None) -> list[FilterIn] | None:
        return check_filters(value)

    @field_validator("reset_usage", mode="before")
    @classmethod
    def _reset_default(cls, value: Any) -> Any:
        return "BILLING_PERIOD" if value is None or value == "" else value


class MeterFilter(ListFilter):
    """``GET /meters`` query: list filters plus ``meter_ids`` and ``event_name``."""

    meter_ids: CsvList | None = None
    event_name: str | None = None

    def keep(self, record: dict[str, Any]) -> bool:
        if not super().keep(record):
            return False
        if self.meter_ids and record["id"] not in self.meter_ids:
            return False
        return not (self.event_name and record.get("event_name") != self.event_name)


def multiplier_text(value: Any) -> str | None:
    if value is None:
        return None
    return format(_normalized(Decimal(value)), "f")


def meter_out(record: dict[str, Any]) -> dict[str, Any]:
    """``MeterResponse``: the multiplier is a decimal string, as Flexprice renders it."""
    aggregation = record.get("aggregation") or {}
    return {
        "id": record["id"],
        "name": record.get("name"),
        "event_name": record.get("event_name"),
        "aggregation": {
            "type": aggregation.get("type"),
            "field": aggregation.get("field"),
            "multiplier": multiplier_text(aggregation.get("multiplier")),
        },
        "filters": [{"key": f["key"], "values": list(f["values"])} for f in record.get("filters") or []],
        "reset_usage": record.get("reset_usage"),
        "status": record.get("status"),
        "tenant_id": record.get("tenant_id"),
        "environment_id": record.get("environment_id"),
        "created_at": record.get("created_at"),
        "updated_at": record.get("updated_at"),
    }
