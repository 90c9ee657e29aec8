"""Tenant and environment: the first part of every key."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scope:
    tenant_id: str
    environment_id: str

    @property
    def prefix(self) -> str:
        return f"{self.tenant_id}#{self.environment_id}"
