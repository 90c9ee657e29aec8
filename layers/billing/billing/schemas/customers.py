"""HTTP schemas of customers (Flexprice ``CreateCustomerRequest`` / ``CustomerResponse``)."""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import available_timezones

from pydantic import Field, field_validator

from billing.schemas.common import CsvList, Edge, ListFilter, Metadata

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
_TIMEZONES: set[str] | None = None


def _check_timezone(value: str | None) -> str | None:
    global _TIMEZONES
    if value is None:
        return None
    if value == "":  # as Flexprice: an empty timezone is UTC
        return "UTC"
    if _TIMEZONES is None:
        _TIMEZONES = available_timezones() | {"UTC"}
    if value not in _TIMEZONES:
        raise ValueError(f"unknown IANA timezone {value!r}")
    return value


class _CustomerFields(Edge):
    name: str | None = Field(default=None, max_length=255)
    email: str | None = Field(default=None, max_length=255)
    address_line1: str | None = Field(default=None, max_length=255)
    address_line2: str | None = Field(default=None, max_length=255)
    address_city: str | None = Field(default=None, max_length=100)
    address_state: str | None = Field(default=None, max_length=100)
    address_postal_code: str | None = Field(default=None, max_length=20)
    address_country: str | None = None
    contact: str | None = Field(default=None, max_length=255)
    timezone: str | None = None
    metadata: Metadata | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value and not _EMAIL.match(value):
            raise ValueError("must be a valid email address")
        return value or None

    @field_validator("address_country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value and not _COUNTRY.match(value):
            raise ValueError("must be an ISO 3166-1 alpha-2 country code")
        return value.upper() if value else None

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return _check_timezone(value)


class IntegrationLink(Edge):
    """An existing provider object to link instead of creating one (``CreateEntityIntegrationMappingRequest``)."""

    provider_type: str = Field(min_length=1, max_length=50)
    provider_entity_id: str = Field(min_length=1, max_length=255)
    entity_type: str | None = None
    entity_id: str | None = None

    @field_validator("provider_type")
    @classmethod
    def _provider(cls, value: str) -> str:
        if value.lower() != "stripe":
            raise ValueError("only the stripe provider is supported")
        return "stripe"

    @field_validator("entity_type")
    @classmethod
    def _entity_type(cls, value: str | None) -> str | None:
        if value and value != "customer":
            raise ValueError("a customer can only be linked as entity_type customer")
        return value


class CustomerCreate(_CustomerFields):
    external_id: str = Field(min_length=1, max_length=255)
    name: str = Field(min_length=1, max_length=255)
    integration_entity_mapping: list[IntegrationLink] | None = Field(default=None, max_length=5)

    @field_validator("integration_entity_mapping")
    @classmethod
    def _one_per_provider(cls, value: list[IntegrationLink] | None) -> list[IntegrationLink] | None:
        if value and len({link.provider_type for link in value}) != len(value):
            raise ValueError("at most one mapping per provider")
        for link in value or []:
            if not link.provider_entity_id.startswith("cus_"):
                raise ValueError("provider_entity_id must be a Stripe customer id (cus_...)")
        return value


class CustomerUpdate(_CustomerFields):
    external_id: str | None = Field(default=None, min_length=1, max_length=255)
    name: str | None = Field(default=None, min_length=1, max_length=255)


class CustomerFilter(ListFilter):
    customer_ids: CsvList | None = None
    external_id: str | None = None
    external_ids: CsvList | None = None
    email: str | None = None

    def keep(self, record: dict[str, Any]) -> bool:
        if not super().keep(record):
            return False
        if self.customer_ids and record["id"] not in self.customer_ids:
            return False
        if self.external_id and record.get("external_id") != self.external_id:
            return False
        if self.external_ids and record.get("external_id") not in self.external_ids:
            return False
        return not (self.email and (record.get("email") or "").lower() != self.email.lower())


RESPONSE_FIELDS = (
    "id",
    "external_id",
    "name",
    "email",
    "address_line1",
    "address_line2",
    "address_city",
    "address_state",
    "address_postal_code",
    "address_country",
    "contact",
    "timezone",
    "metadata",
    "tenant_id",
    "environment_id",
    "status",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
)


def customer_out(record: dict[str, Any]) -> dict[str, Any]:
    out = {field: record.get(field) for field in RESPONSE_FIELDS}
    out["metadata"] = record.get("metadata") or {}
    return out
