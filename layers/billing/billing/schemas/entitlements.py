"""Entitlements (Flexprice's ``CreateEntitlementRequest`` / ``EntitlementResponse`` and the aggregated views)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from billing.domain.entitlements import usage_percent
from billing.schemas.common import CsvList, Edge
from billing.schemas.features import feature_out
from billing.schemas.subscriptions import subscription_out
from billing.timeutil import iso

FeatureType = Literal["metered", "boolean", "static", "config"]
ResetPeriod = Literal["DAILY", "WEEKLY", "MONTHLY", "QUARTERLY", "HALF_YEARLY", "ANNUAL", "NEVER"]
MAX_USAGE_LIMIT = 10**15


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class EntitlementCreate(Edge):
    feature_id: str = Field(min_length=1, max_length=64)
    feature_type: FeatureType
    plan_id: str | None = Field(default=None, max_length=64)
    entity_type: Literal["PLAN", "SUBSCRIPTION", "ADDON"] | None = None
    entity_id: str | None = Field(default=None, max_length=64)
    is_enabled: bool = True
    # None (or absent) for a metered feature: unlimited.
    usage_limit: int | None = Field(default=None, ge=0, le=MAX_USAGE_LIMIT)
    usage_reset_period: ResetPeriod | None = None
    is_soft_limit: bool = False
    static_value: str | None = Field(default=None, max_length=500)
    config_value: dict[str, Any] | None = None

    _e = field_validator("entity_type", mode="before")(_upper)
    _r = field_validator("usage_reset_period", mode="before")(_upper)

    @field_validator("feature_type", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class EntitlementUpdate(Edge):
    is_enabled: bool | None = None
    usage_limit: int | None = Field(default=None, ge=0, le=MAX_USAGE_LIMIT)
    usage_reset_period: ResetPeriod | None = None
    is_soft_limit: bool | None = None
    static_value: str | None = Field(default=None, max_length=500)
    config_value: dict[str, Any] | None = None

    _r = field_validator("usage_reset_period", mode="before")(_upper)


class FeatureIds(Edge):
    feature_ids: CsvList | None = None


class UsageQuery(Edge):
    customer_id: str | None = Field(default=None, max_length=64)
    customer_lookup_key: str | None = Field(default=None, max_length=255)
    feature_ids: CsvList | None = None
    feature_lookup_keys: CsvList | None = None
    subscription_ids: CsvList | None = None


RESPONSE_FIELDS = (
    "id",
    "plan_id",
    "entity_type",
    "entity_id",
    "feature_id",
    "feature_type",
    "is_enabled",
    "usage_limit",
    "usage_reset_period",
    "is_soft_limit",
    "static_value",
    "config_value",
    "tenant_id",
    "environment_id",
    "status",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
)


def entitlement_out(record: dict[str, Any]) -> dict[str, Any]:
    out = {field: record.get(field) for field in RESPONSE_FIELDS}
    feature = record.get("feature")
    if feature:
        out["feature"] = feature_out(feature)
    return out


def _source_out(source: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in source.items() if not k.startswith("_")}


def aggregated_out(feature: dict[str, Any], combined: Any) -> dict[str, Any]:
    """Flexprice's ``AggregatedFeature``: the feature, the combined entitlement, and where it comes from."""
    return {
        "feature": feature_out(feature),
        "entitlement": {
            "aggregation_mode": "additive",
            "is_enabled": combined.is_enabled,
            "usage_limit": combined.usage_limit,
            "is_soft_limit": combined.is_soft_limit,
            "usage_reset_period": combined.usage_reset_period,
            "static_values": list(combined.static_values),
            "config_values": [s["config_value"] for s in combined.sources if s.get("config_value")],
        },
        "sources": [_source_out(dict(s)) for s in combined.sources],
    }


def subscription_entitlements_out(view: dict[str, Any]) -> dict[str, Any]:
    return {
        "subscription_id": view["subscription_id"],
        "plan_id": view["plan_id"],
        "features": [aggregated_out(f, c) for f, c in view["features"]],
    }


def customer_entitlements_out(view: dict[str, Any]) -> dict[str, Any]:
    return {
        "customer_id": view["customer_id"],
        "features": [aggregated_out(f, c) for f, c in view["features"]],
        "subscriptions": [subscription_out(s) for s in view["subscriptions"]],
    }


def usage_summary_out(summary: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for row in summary["rows"]:
        combined = row["combined"]
        used = row["used"]
        percent = usage_percent(used, combined.usage_limit)
        rows.append(
            {
                "feature": feature_out(row["feature"]),
                "current_usage": format(used.normalize() if used == used.to_integral_value() else used, "f"),
                "total_limit": combined.usage_limit,
                "is_unlimited": combined.usage_limit is None,
                "is_enabled": combined.is_enabled,
                "is_soft_limit": combined.is_soft_limit,
                "usage_percent": None if percent is None else format(percent, "f"),
                "next_usage_reset_at": iso(row["resets_at"]) if row["resets_at"] else None,
                "sources": [_source_out(dict(s)) for s in combined.sources],
            }
        )
    return {"customer_id": summary["customer_id"], "features": rows}
