"""HTTP schemas of features (Flexprice ``CreateFeatureRequest``, ``UpdateFeatureRequest``,
``types.FeatureFilter``, ``FeatureResponse``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from billing.schemas.common import CsvList, Edge, ListFilter, Metadata
from billing.schemas.meters import FilterIn, MeterCreate, check_filters, meter_out

FeatureType = Literal["metered", "boolean", "static", "config"]


def _blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


class _FeatureFields(Edge):
    description: str | None = Field(default=None, max_length=4000)
    metadata: Metadata | None = None
    unit_singular: str | None = Field(default=None, max_length=255)
    unit_plural: str | None = Field(default=None, max_length=255)


class FeatureCreate(_FeatureFields):
    name: str = Field(min_length=1, max_length=255)
    type: FeatureType
    lookup_key: str | None = Field(default=None, max_length=255)
    meter_id: str | None = Field(default=None, max_length=255, validate_default=True)
    meter: MeterCreate | None = Field(default=None, validate_default=True)
    unit_plural: str | None = Field(default=None, max_length=255, validate_default=True)

    @field_validator("lookup_key", "meter_id", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return _blank_to_none(value)

    @field_validator("meter_id")
    @classmethod
    def _meter_id_rule(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("type")
        if value is not None and kind is not None and kind != "metered":
            raise ValueError(f"only metered features take a meter_id, not {kind} features")
        return value

    @field_validator("meter")
    @classmethod
    def _meter_rule(cls, value: MeterCreate | None, info: ValidationInfo) -> MeterCreate | None:
        kind = info.data.get("type")
        if kind is None or "meter_id" not in info.data:
            return value
        meter_id = info.data.get("meter_id")
        if kind != "metered":
            if value is not None:
                raise ValueError(f"only metered features have a meter, not {kind} features")
            return None
        if value is None and meter_id is None:
            raise ValueError("a metered feature needs a meter or a meter_id")
        if value is not None and meter_id is not None:
            raise ValueError("give either meter or meter_id, not both")
        return value

    @field_validator("unit_plural")
    @classmethod
    def _units_together(cls, value: str | None, info: ValidationInfo) -> str | None:
        if "unit_singular" in info.data and bool(info.data.get("unit_singular")) != bool(value):
            raise ValueError("unit_singular and unit_plural must be set together")
        return value


class FeatureUpdate(_FeatureFields):
    """``UpdateFeatureRequest``. A feature's type and meter never change; a different one is refused."""

    name: str | None = Field(default=None, min_length=1, max_length=255)
    filters: list[FilterIn] | None = None
    type: FeatureType | None = None
    meter_id: str | None = None
    meter: dict[str, Any] | None = None

    @field_validator("filters")
    @classmethod
    def _filters(cls, value: list[FilterIn] | None) -> list[FilterIn] | None:
        return check_filters(value)


class FeatureFilter(ListFilter):
    """``types.FeatureFilter``: a ``POST /features/search`` body or the ``GET /features`` query."""

    feature_ids: CsvList | None = None
    lookup_key: str | None = None
    lookup_keys: CsvList | None = None
    meter_ids: CsvList | None = None
    name_contains: str | None = None
    expand: str | None = None  # meters are always expanded

    def keep(self, record: dict[str, Any]) -> bool:
        if not super().keep(record):
            return False
        if self.feature_ids and record["id"] not in self.feature_ids:
            return False
        if self.lookup_key and record.get("lookup_key") != self.lookup_key:
            return False
        if self.lookup_keys and record.get("lookup_key") not in self.lookup_keys:
            return False
        if self.meter_ids and record.get("meter_id") not in self.meter_ids:
            return False
        return not (self.name_contains and self.name_contains.lower() not in (record.get("name") or "").lower())


RESPONSE_FIELDS = (
    "id",
    "name",
    "lookup_key",
    "description",
    "type",
    "meter_id",
    "metadata",
    "unit_singular",
    "unit_plural",
    "tenant_id",
    "environment_id",
    "status",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
)


def feature_out(record: dict[str, Any]) -> dict[str, Any]:
    """``FeatureResponse`` with the meter expanded (``record["meter"]``, attached by the service)."""
    out = {field: record.get(field) for field in RESPONSE_FIELDS}
    out["metadata"] = record.get("metadata") or {}
    meter = record.get("meter")
    out["meter"] = meter_out(meter) if meter else None
    return out
