"""HTTP schemas of card setup (Stripe Checkout in setup mode) and saved payment methods."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from billing.schemas.common import Metadata


def _url(value: str) -> str:
    if not value.startswith(("https://", "http://")):
        raise ValueError("must be an absolute http(s) URL")
    return value


def _cards() -> list[Literal["card"]]:
    return ["card"]


class SetupIntentCreate(BaseModel):
    """``POST /payments/customers/{customer_id}/setup/intent``; unknown fields are refused (a typo must not
    silently drop ``set_default``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    provider: Literal["stripe"] = "stripe"
    usage: Literal["off_session", "on_session"] = "off_session"
    payment_method_types: list[Literal["card"]] = Field(default_factory=_cards, min_length=1)
    success_url: str = Field(min_length=1, max_length=2048)
    cancel_url: str | None = Field(default=None, max_length=2048)
    set_default: bool = False
    metadata: Metadata | None = Field(default=None, max_length=20)

    @field_validator("provider", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("success_url")
    @classmethod
    def _success(cls, value: str) -> str:
        return _url(value)

    @field_validator("cancel_url")
    @classmethod
    def _cancel(cls, value: str | None) -> str | None:
        return _url(value) if value else None
