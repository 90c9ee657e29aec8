"""HTTP schemas of provider connections (Flexprice ``/connections``; Stripe is the provider supported)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from billing.schemas.common import CsvList, Edge, ListFilter, Metadata


class EntitySync(BaseModel):
    model_config = ConfigDict(extra="ignore")
    inbound: bool = False
    outbound: bool = False


class SyncConfig(BaseModel):
    """Which entities flow to (outbound) and from (inbound) the provider."""

    model_config = ConfigDict(extra="ignore")
    customer: EntitySync = Field(default_factory=lambda: EntitySync(outbound=True))
    invoice: EntitySync = Field(default_factory=lambda: EntitySync(outbound=True))
    payment: EntitySync = Field(default_factory=EntitySync)
    plan: EntitySync = Field(default_factory=EntitySync)
    price: EntitySync = Field(default_factory=EntitySync)
    subscription: EntitySync = Field(default_factory=EntitySync)


class StripeSecrets(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    secret_key: str = Field(min_length=8, max_length=255)
    publishable_key: str | None = Field(default=None, max_length=255)
    webhook_secret: str | None = Field(default=None, max_length=255)

    @field_validator("secret_key")
    @classmethod
    def _secret(cls, value: str) -> str:
        if not value.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
            raise ValueError("must be a Stripe secret or restricted key (sk_... or rk_...)")
        return value

    @field_validator("publishable_key")
    @classmethod
    def _publishable(cls, value: str | None) -> str | None:
        if value and not value.startswith(("pk_test_", "pk_live_")):
            raise ValueError("must be a Stripe publishable key (pk_...)")
        return value or None

    @field_validator("webhook_secret")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        if value and not value.startswith("whsec_"):
            raise ValueError("must be a Stripe webhook signing secret (whsec_...)")
        return value or None


class ConnectionCreate(Edge):
    name: str = Field(min_length=1, max_length=255)
    provider_type: Literal["stripe"]
    encrypted_secret_data: StripeSecrets
    sync_config: SyncConfig = Field(default_factory=SyncConfig)
    metadata: Metadata | None = None

    @field_validator("provider_type", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class ConnectionUpdate(Edge):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    encrypted_secret_data: StripeSecrets | None = None
    sync_config: SyncConfig | None = None
    metadata: Metadata | None = None


class ConnectionFilter(ListFilter):
    connection_ids: CsvList | None = None
    provider_type: str | None = None

    def keep(self, record: dict[str, Any]) -> bool:
        if not super().keep(record):
            return False
        if self.connection_ids and record["id"] not in self.connection_ids:
            return False
        return not (self.provider_type and record.get("provider_type") != self.provider_type.lower())


def _hint(value: str | None) -> str | None:
    """Enough of a secret to recognise it, never enough to use it."""
    if not value:
        return None
    prefix = value.split("_", 2)
    head = "_".join(prefix[:2]) + "_" if len(prefix) > 2 else ""
    return f"{head}…{value[-4:]}"


def connection_out(record: dict[str, Any]) -> dict[str, Any]:
    hints = record.get("secret_hints") or {}
    return {
        "id": record["id"],
        "name": record["name"],
        "provider_type": record["provider_type"],
        "connection_status": "active" if record["status"] == "published" else "inactive",
        "sync_config": record.get("sync_config") or {},
        "metadata": record.get("metadata") or {},
        # Secrets are never returned: only which ones are set, and a hint of each.
        "secret_data_hints": hints,
        # Whether the secret key is a live-mode key, as Stripe said when it was checked (absent: never checked).
        "livemode": record.get("livemode"),
        "environment_id": record["environment_id"],
        "tenant_id": record["tenant_id"],
        "status": record["status"],
        "created_at": record["created_at"],
        "updated_at": record["updated_at"],
        "created_by": record.get("created_by"),
        "updated_by": record.get("updated_by"),
    }


def secret_hints(secrets: StripeSecrets) -> dict[str, str | None]:
    return {
        "secret_key": _hint(secrets.secret_key),
        "publishable_key": secrets.publishable_key,
        "webhook_secret": _hint(secrets.webhook_secret),
    }
