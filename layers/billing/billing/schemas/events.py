"""HTTP schemas of events and usage (Flexprice ``IngestEventRequest``, ``BulkIngestEventRequest``,
``GetUsageByMeterRequest``, ``GetUsageRequest``, ``GetUsageResponse``, ``GetEventsRequest``, ``GetEventsResponse``)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from billing.domain import metering
from billing.schemas.common import Edge, Timestamp

MAX_PROPERTIES_BYTES = 4096
MAX_BULK = 1000

WindowSize = Literal["MINUTE", "15MIN", "30MIN", "HOUR", "3HOUR", "6HOUR", "12HOUR", "DAY", "WEEK", "MONTH"]
AggregationType = Literal["COUNT", "SUM", "AVG", "MAX", "LATEST", "COUNT_UNIQUE", "SUM_WITH_MULTIPLIER", "WEIGHTED_SUM"]


def _check_number(value: Decimal) -> None:
    digits = value.as_tuple()
    if not value.is_finite() or len(digits.digits) > 38:
        raise ValueError("numbers may have at most 38 significant digits")
    if value and not -130 <= value.adjusted() <= 125:
        raise ValueError("number is out of range")


def _check_properties(value: Any, depth: int = 0) -> None:
    if depth > 8:
        raise ValueError("properties nest too deeply")
    if isinstance(value, dict):
        for key, inner in value.items():
            if not isinstance(key, str) or not key or len(key) > 255:
                raise ValueError("property names must be 1..255 characters")
            _check_properties(inner, depth + 1)
    elif isinstance(value, list):
        for inner in value:
            _check_properties(inner, depth + 1)
    elif isinstance(value, Decimal):
        _check_number(value)
    elif isinstance(value, float):
        raise ValueError("numbers must be exact decimals")


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class IngestEvent(Edge):
    event_name: str = Field(min_length=1, max_length=255)
    external_customer_id: str = Field(min_length=1, max_length=255)
    customer_id: str | None = Field(default=None, max_length=255)
    event_id: str | None = Field(default=None, min_length=1, max_length=255)
    timestamp: Timestamp | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    source: str | None = Field(default=None, max_length=255)

    @field_validator("properties", mode="before")
    @classmethod
    def _properties(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError("must be an object")
        normalized = {k: Decimal(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in value.items()}
        _check_properties(normalized)
        size = len(json.dumps(value, default=str, separators=(",", ":")))
        if size > MAX_PROPERTIES_BYTES:
            raise ValueError(f"must be at most {MAX_PROPERTIES_BYTES} bytes of JSON")
        return value

    @field_validator("timestamp")
    @classmethod
    def _timestamp(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.year < 1971:
            raise ValueError("must be after 1970")
        return value


class BulkIngest(Edge):
    events: list[IngestEvent] = Field(min_length=1, max_length=MAX_BULK)


def _filters(value: Any) -> Any:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
    return value


class _UsageQuery(Edge):
    external_customer_id: str | None = Field(default=None, max_length=255)
    customer_id: str | None = Field(default=None, max_length=255)
    start_time: Timestamp | None = None
    end_time: Timestamp | None = None
    window_size: WindowSize | None = None
    bucket_size: WindowSize | None = None
    billing_anchor: Timestamp | None = None
    timezone: str | None = None
    filters: dict[str, list[str]] = Field(default_factory=dict)

    _upper_window = field_validator("window_size", "bucket_size", mode="before")(_upper)
    _filters_shape = field_validator("filters", mode="before")(_filters)

    @field_validator("timezone")
    @classmethod
    def _utc(cls, value: str | None) -> str | None:
        if value and value.upper() not in ("UTC", "ETC/UTC", "Z"):
            raise ValueError("usage windows are computed in UTC; send UTC or omit timezone")
        return value

    @property
    def window(self) -> str | None:
        return self.window_size or self.bucket_size

    @model_validator(mode="after")
    def _customer(self) -> _UsageQuery:
        if not self.external_customer_id and not self.customer_id:
            raise ValueError("external_customer_id or customer_id is required")
        return self


class UsageByMeterQuery(_UsageQuery):
    meter_id: str = Field(min_length=1, max_length=255)


class UsageQuery(_UsageQuery):
    event_name: str = Field(min_length=1, max_length=255)
    aggregation_type: AggregationType
    property_name: str | None = Field(default=None, max_length=255)
    multiplier: Decimal | None = None

    _upper_agg = field_validator("aggregation_type", mode="before")(_upper)

    @field_validator("multiplier", mode="before")
    @classmethod
    def _multiplier(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        try:
            return metering.parse_number(value)
        except metering.FieldError as err:
            raise ValueError(str(err)) from None

    @model_validator(mode="after")
    def _field(self) -> UsageQuery:
        if self.aggregation_type != "COUNT" and not self.property_name:
            raise ValueError(f"property_name is required for {self.aggregation_type}")
        return self


class EventsQuery(Edge):
    event_name: str | None = Field(default=None, max_length=255)
    external_customer_id: str | None = Field(default=None, max_length=255)
    event_id: str | None = Field(default=None, max_length=255)
    source: str | None = Field(default=None, max_length=255)
    start_time: Timestamp | None = None
    end_time: Timestamp | None = None
    page_size: int = Field(default=50, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=100_000)
    order: Literal["asc", "desc"] = "desc"
    sort: Literal["timestamp", "event_name"] = "timestamp"
    iter_first_key: str | None = Field(default=None, max_length=600)
    iter_last_key: str | None = Field(default=None, max_length=600)
    property_filters: dict[str, list[str]] = Field(default_factory=dict)

    _filters_shape = field_validator("property_filters", mode="before")(_filters)

    @field_validator("order", "sort", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("page_size", mode="before")
    @classmethod
    def _default_page_size(cls, value: Any) -> Any:
        """As Flexprice: a page size of 0 or less means the default (50)."""
        return 50 if isinstance(value, int) and not isinstance(value, bool) and value <= 0 else value

    @field_validator("offset", mode="before")
    @classmethod
    def _default_offset(cls, value: Any) -> Any:
        """As Flexprice: a negative offset means 0."""
        return 0 if isinstance(value, int) and not isinstance(value, bool) and value < 0 else value

    @model_validator(mode="after")
    def _indexed(self) -> EventsQuery:
        if not (self.external_customer_id or self.event_name or self.event_id):
            raise ValueError("external_customer_id, event_name or event_id is required")
        return self


class LookupQuery(Edge):
    id: str = Field(min_length=1, max_length=255)


GROUPS_KEPT = ("feature_id",)


class UsageAnalyticsQuery(Edge):
    """Flexprice ``GetUsageAnalyticsRequest``. Usage is kept per customer and meter, so one customer is required,
    items are per feature (``group_by`` ``feature_id``), and dimensions the counters do not keep (``sources``,
    ``property_filters``, grouping by ``source`` or a property) are refused by the service."""

    external_customer_id: str = Field(min_length=1, max_length=255)
    start_time: Timestamp | None = None
    end_time: Timestamp | None = None
    window_size: WindowSize | None = None
    feature_ids: list[str] = Field(default_factory=list, max_length=1000)
    group_by: list[str] = Field(default_factory=list, max_length=10)
    sources: list[str] = Field(default_factory=list, max_length=100)
    property_filters: dict[str, list[str]] = Field(default_factory=dict)
    expand: list[str] = Field(default_factory=list, max_length=10)
    include_children: bool = False
    breakdown_bucket: bool = False

    _upper_window = field_validator("window_size", mode="before")(_upper)
    _filters_shape = field_validator("property_filters", mode="before")(_filters)

    @field_validator("feature_ids", "group_by", "sources", "expand", mode="before")
    @classmethod
    def _no_list(cls, value: Any) -> Any:
        return [] if value is None else value
