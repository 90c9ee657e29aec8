"""Entities keyed by tenant and environment first.

Item layout (table ``EntitiesTable``):

- ``PK = <tenant>#<env>#<kind>``, ``SK = <id>``: one item per entity; a list is one Query, newest first.
- optional ``GSI1PK/GSI1SK`` and ``GSI2PK/GSI2SK`` set by services for secondary access patterns.
- ``PK = <tenant>#<env>#<kind>#<unique-field>``, ``SK = <value>``: uniqueness claims, written in the same
  transaction as the entity, so a duplicate can never be half-written.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from billing.errors import AlreadyExists, NotFound, VersionConflict, not_found
from billing.scope import Scope
from billing.store.dynamo import ConditionFailed, Table

KEY_ATTRS = ("PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK")

ACTIVE = "published"
ARCHIVED = "archived"


def entity_pk(scope: Scope, kind: str) -> str:
    return f"{scope.prefix}#{kind}"


def unique_pk(scope: Scope, kind: str, field: str) -> str:
    return f"{scope.prefix}#{kind}#{field}"


def strip_keys(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in KEY_ATTRS}


class Entities:
    """Create, read, update and archive one kind of entity."""

    def __init__(self, table: Table, kind: str, label: str) -> None:
        self.table = table
        self.kind = kind
        self.label = label

    # -- reads --------------------------------------------------------------------------------
    def find(self, scope: Scope, entity_id: str) -> dict[str, Any] | None:
        item = self.table.get(entity_pk(scope, self.kind), entity_id)
        return strip_keys(item) if item else None

    def get(self, scope: Scope, entity_id: str) -> dict[str, Any]:
        found = self.find(scope, entity_id)
        if found is None:
            raise not_found(self.label, entity_id)
        return found

    def get_active(self, scope: Scope, entity_id: str) -> dict[str, Any]:
        found = self.get(scope, entity_id)
        if found.get("status") != ACTIVE:
            raise NotFound(f"{self.label} {entity_id} is archived", {"entity": self.label, "id": entity_id})
        return found

    def get_many(self, scope: Scope, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        pk = entity_pk(scope, self.kind)
        keys = [(pk, i) for i in dict.fromkeys(ids)]
        return {item["id"]: strip_keys(item) for item in self.table.batch_get(keys)}

    def list(self, scope: Scope) -> list[dict[str, Any]]:
        """Every entity of this kind, newest first (ids are time-ordered ULIDs)."""
        return [strip_keys(i) for i in self.table.query(entity_pk(scope, self.kind), forward=False)]

    def list_by_index(self, index: str, key: str) -> builtins.list[dict[str, Any]]:
        return [strip_keys(i) for i in self.table.query(key, index=index, forward=False)]

    def lookup_unique(self, scope: Scope, field: str, value: str) -> str | None:
        claim = self.table.get(unique_pk(scope, self.kind, field), value)
        return claim["entity_id"] if claim else None

    # -- writes -------------------------------------------------------------------------------
    def item(self, scope: Scope, record: Mapping[str, Any], indexes: Mapping[str, str] | None = None) -> dict[str, Any]:
        return {"PK": entity_pk(scope, self.kind), "SK": record["id"], **(indexes or {}), **record}

    def claim_op(self, scope: Scope, field: str, value: str, entity_id: str) -> dict[str, Any]:
        return self.table.put_op(
            {"PK": unique_pk(scope, self.kind, field), "SK": value, "entity_id": entity_id},
            condition="attribute_not_exists(PK)",
        )

    def release_op(self, scope: Scope, field: str, value: str, entity_id: str) -> dict[str, Any]:
        return {
            "Delete": {
                "TableName": self.table.name,
                "Key": {"PK": {"S": unique_pk(scope, self.kind, field)}, "SK": {"S": value}},
                "ConditionExpression": "entity_id = :id",
                "ExpressionAttributeValues": {":id": {"S": entity_id}},
            }
        }

    def create(
        self,
        scope: Scope,
        record: Mapping[str, Any],
        *,
        indexes: Mapping[str, str] | None = None,
        unique: Mapping[str, str] | None = None,
        extra_ops: Sequence[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        """Write a new entity with its uniqueness claims (and any extra items) in one transaction."""
        ops = [self.table.put_op(self.item(scope, record, indexes), condition="attribute_not_exists(PK)")]
        for field, value in (unique or {}).items():
            ops.append(self.claim_op(scope, field, value, record["id"]))
        ops.extend(extra_ops)
        try:
            self.table.transact(ops)
        except ConditionFailed as failed:
            names = list((unique or {}).items())
            for position, reason in enumerate(failed.reasons):
                if reason == "ConditionalCheckFailed" and 1 <= position <= len(names):
                    field, value = names[position - 1]
                    raise AlreadyExists(
                        f"{self.label} with {field} {value!r} already exists",
                        {"entity": self.label, "field": field, "value": value},
                    ) from None
            raise
        return dict(record)

    def replace(
        self,
        scope: Scope,
        record: Mapping[str, Any],
        expected_version: int,
        *,
        indexes: Mapping[str, str] | None = None,
        extra_ops: Sequence[dict[str, Any]] = (),
    ) -> dict[str, Any]:
        """Write a changed entity if nobody else changed it since ``expected_version`` was read."""
        put = self.table.put_op(
            self.item(scope, record, indexes),
            condition="attribute_exists(PK) AND version = :v",
            values={":v": expected_version},
        )
        try:
            self.table.transact([put, *extra_ops])
        except ConditionFailed as failed:
            if failed.reasons and failed.reasons[0] == "ConditionalCheckFailed":
                raise VersionConflict(
                    f"{self.label} {record['id']} was changed by another request; retry",
                    {"entity": self.label, "id": record["id"]},
                ) from None
            raise
        return dict(record)
