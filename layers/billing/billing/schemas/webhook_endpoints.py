"""Outbound webhook endpoints, their deliveries, replays and the test-send (docs/webhooks-out.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, field_validator, model_validator

from billing.domain.webhooks_out import EVENT_TYPES
from billing.schemas.common import Edge, ListFilter, Metadata, Timestamp

MAX_URL_CHARS = 2048


def _event_types(value: list[str] | None) -> list[str] | None:
    if value is None:
        return None
    unknown = sorted(set(value) - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")
    return sorted(set(value))


class EndpointCreate(Edge):
    url: str = Field(min_length=8, max_length=MAX_URL_CHARS)
    description: str | None = Field(default=None, max_length=500)
    # Empty or absent: every event type.
    event_types: list[str] | None = Field(default=None, max_length=len(EVENT_TYPES))
    enabled: bool = True
    metadata: Metadata | None = None

    _types = field_validator("event_types")(_event_types)


class EndpointUpdate(Edge):
    url: str | None = Field(default=None, min_length=8, max_length=MAX_URL_CHARS)
    description: str | None = Field(default=None, max_length=500)
    event_types: list[str] | None = Field(default=None, max_length=len(EVENT_TYPES))
    enabled: bool | None = None
    metadata: Metadata | None = None

    _types = field_validator("event_types")(_event_types)


class EndpointFilter(ListFilter):
    pass


class DeliveryFilter(Edge):
    limit: int = Field(default=50, ge=1, le=1000)


class Replay(Edge):
    """One message (``message_id``) or every message created in ``[start_time, end_time]`` (at most 1000)."""

    message_id: str | None = Field(default=None, min_length=5, max_length=64)
    start_time: Timestamp | None = None
    end_time: Timestamp | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Replay:
        if self.message_id is None and (self.start_time is None or self.end_time is None):
            raise ValueError("give message_id, or both start_time and end_time")
        if self.message_id is not None and (self.start_time is not None or self.end_time is not None):
            raise ValueError("give message_id or a time range, not both")
        if self.start_time is not None and self.end_time is not None and self.end_time < self.start_time:
            raise ValueError("end_time is before start_time")
        return self

    def window(self) -> tuple[datetime, datetime] | None:
        if self.start_time is None or self.end_time is None:
            return None
        return self.start_time, self.end_time


# What the endpoint answers carry (the create answer adds ``secret``, once); read by tools/openapi.py.
RESPONSE_FIELDS = (
    "id",
    "url",
    "description",
    "event_types",
    "enabled",
    "metadata",
    "secret_hint",
    "environment_id",
    "tenant_id",
    "status",
    "created_at",
    "updated_at",
)


def endpoint_out(record: dict[str, Any], secret: str | None = None) -> dict[str, Any]:
    out = {
        "id": record["id"],
        "url": record["url"],
        "description": record.get("description"),
        "event_types": record.get("event_types") or [],
        "enabled": bool(record.get("enabled")),
        "metadata": record.get("metadata") or {},
        "secret_hint": record.get("secret_hint"),
        "environment_id": record["environment_id"],
        "tenant_id": record["tenant_id"],
        "status": record["status"],
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
    }
    if secret is not None:
        out["secret"] = secret  # shown once, when the endpoint is created
    return out


def delivery_out(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "message_id": record["message_id"],
        "endpoint_id": record["endpoint_id"],
        "event_type": record["event_type"],
        "status": record["status"],
        "attempts": int(record.get("attempts") or 0),
        "generation": int(record.get("generation") or 1),
        "response_status": record.get("response_status"),
        "error": record.get("error"),
        "next_attempt_at": record.get("next_attempt_at"),
        "delivered_at": record.get("delivered_at"),
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
    }
