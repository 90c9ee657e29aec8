"""HTTP schemas of plans (Flexprice ``CreatePlanRequest``, ``UpdatePlanRequest``, ``PlanResponse``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field, StrictInt, field_validator

from billing.schemas.common import CsvList, Edge, ListFilter, Metadata
from billing.schemas.prices import PriceFields, price_out

MAX_INLINE_PRICES = 99
"""The plan and its inline prices are one DynamoDB transaction (at most 100 items)."""

DisplayOrder = Annotated[StrictInt, Field(ge=-1_000_000, le=1_000_000)]


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


class PlanCreate(Edge):
    name: str = Field(min_length=1, max_length=255)
    lookup_key: str | None = Field(default=None, max_length=255)
    description: str | None = Field(default=None, max_length=2000)
    display_order: DisplayOrder | None = None
    metadata: Metadata | None = None
    prices: list[PriceFields] | None = Field(default=None, max_length=MAX_INLINE_PRICES)

    @field_validator("lookup_key", "description", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return _blank_is_none(value)


class PlanUpdate(Edge):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    lookup_key: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = Field(default=None, max_length=2000)
    display_order: DisplayOrder | None = None
    metadata: Metadata | None = None


class PlanFilter(ListFilter):
    """Flexprice ``types.PlanFilter`` (body of ``POST /plans/search``, query of ``GET /plans``)."""

    plan_ids: CsvList | None = Field(default=None, max_length=1000)
    lookup_key: str | None = None
    metadata: Metadata | None = None
    expand: str | None = None

    def expands_prices(self) -> bool:
        return "prices" in {part.strip() for part in (self.expand or "").split(",")}

    def keep(self, record: dict[str, Any]) -> bool:
        if not super().keep(record):
            return False
        if self.plan_ids and record["id"] not in self.plan_ids:
            return False
        if self.lookup_key and record.get("lookup_key") != self.lookup_key:
            return False
        held = record.get("metadata") or {}
        return all(held.get(k) == v for k, v in (self.metadata or {}).items())


RESPONSE_FIELDS = (
    "id",
    "name",
    "lookup_key",
    "description",
    "display_order",
    "metadata",
    "tenant_id",
    "environment_id",
    "status",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
)


def plan_out(record: dict[str, Any], prices: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Flexprice ``PlanResponse``; ``prices`` only when the caller asked for them (omitted otherwise)."""
    out = {field: record.get(field) for field in RESPONSE_FIELDS}
    out["metadata"] = record.get("metadata") or {}
    if prices is not None:
        out["prices"] = [price_out(p) for p in prices]
    return out
