"""HTTP schemas of entity integration mappings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from billing.schemas.common import DEFAULT_LIMIT, MAX_LIMIT, Edge

EntityType = Literal[
    "customer",
    "plan",
    "invoice",
    "subscription",
    "payment",
    "credit_note",
    "addon",
    "item",
    "item_price",
    "price",
    "invoice_line_item",
    "subscription_line_item",
]


class MappingQuery(Edge):
    entity_type: EntityType
    entity_id: str = Field(min_length=1, max_length=255)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    offset: int = Field(default=0, ge=0)
