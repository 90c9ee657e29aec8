"""The webhook queue's message, as the intake writes it and the processor reads it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class WebhookMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tenant_id: str = Field(min_length=1, max_length=64)
    environment_id: str = Field(min_length=1, max_length=64)
    stripe_event_id: str = Field(pattern=r"^evt_")
    type: str = Field(min_length=1)
    received_at: str | None = None
    payload: dict[str, Any]

    @model_validator(mode="after")
    def _consistent(self) -> WebhookMessage:
        if self.payload.get("id") != self.stripe_event_id or self.payload.get("type") != self.type:
            raise ValueError("payload id/type do not match the message")
        if not isinstance((self.payload.get("data") or {}).get("object"), dict):
            raise ValueError("payload has no data.object")
        return self
