"""Entity integration mappings: which provider object (e.g. a Stripe customer) stands for one of ours.

Items (entities table, kind ``eim``): the mapping itself under ``<tenant>#<env>#eim`` / ``eim_<ULID>``, plus two
claims written in the same transaction, so each side maps at most once:
``<tenant>#<env>#eim#entity`` / ``<entity_type>#<entity_id>#<provider>`` and
``<tenant>#<env>#eim#provider`` / ``<provider>#<entity_type>#<provider_entity_id>``.

Unlinking archives the mapping, releases both claims and counts the unlink under ``<tenant>#<env>#eim#unlinked`` /
``<entity_type>#<entity_id>#<provider>`` (``unlinks``), so what is created to replace a link can be told apart from
what was created before it (an idempotency key naming the count never replays the first create).
"""

from __future__ import annotations

from typing import Any

from billing import wiring
from billing.errors import AlreadyExists, VersionConflict
from billing.ids import new_id
from billing.scope import Scope
from billing.store.dynamo import ConditionFailed
from billing.store.entities import ACTIVE, ARCHIVED, Entities
from billing.timeutil import iso, utcnow


def _repo() -> Entities:
    return Entities(wiring.entities(), "eim", "entity mapping")


def find(scope: Scope, entity_type: str, entity_id: str, provider: str) -> dict[str, Any] | None:
    repo = _repo()
    mapping_id = repo.lookup_unique(scope, "entity", f"{entity_type}#{entity_id}#{provider}")
    return repo.find(scope, mapping_id) if mapping_id else None


def find_by_provider_id(
    scope: Scope, provider: str, entity_type: str, provider_entity_id: str
) -> dict[str, Any] | None:
    repo = _repo()
    mapping_id = repo.lookup_unique(scope, "provider", f"{provider}#{entity_type}#{provider_entity_id}")
    return repo.find(scope, mapping_id) if mapping_id else None


def link(
    scope: Scope,
    entity_type: str,
    entity_id: str,
    provider: str,
    provider_entity_id: str,
    metadata: dict[str, Any] | None = None,
    actor: str = "system",
) -> dict[str, Any]:
    """Record a link; linking the same pair again returns the existing mapping (idempotent)."""
    existing = find(scope, entity_type, entity_id, provider)
    if existing is not None:
        if existing["provider_entity_id"] != provider_entity_id:
            raise AlreadyExists(
                f"{entity_type} {entity_id} is already linked to {provider} {existing['provider_entity_id']}",
                {"entity_type": entity_type, "entity_id": entity_id, "provider_type": provider},
            )
        return existing
    now = iso(utcnow())
    record = {
        "id": new_id("entity_mapping"),
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "provider_type": provider,
        "provider_entity_id": provider_entity_id,
        "metadata": metadata or {},
        "status": ACTIVE,
        "created_at": now,
        "updated_at": now,
        "created_by": actor,
        "updated_by": actor,
        "version": 1,
    }
    try:
        return _repo().create(
            scope,
            record,
            unique={
                "entity": f"{entity_type}#{entity_id}#{provider}",
                "provider": f"{provider}#{entity_type}#{provider_entity_id}",
            },
        )
    except AlreadyExists:
        # A concurrent link of the same pair won the race: return it.
        again = find(scope, entity_type, entity_id, provider)
        if again is not None and again["provider_entity_id"] == provider_entity_id:
            return again
        raise


def unlink(scope: Scope, mapping: dict[str, Any], reason: str, actor: str = "system") -> bool:
    """Retire a link: the mapping is archived (kept for the audit trail) and both its claims are released in one
    transaction, so each side can be linked afresh. Returns False when someone else changed or retired it first."""
    repo = _repo()
    entity_claim = f"{mapping['entity_type']}#{mapping['entity_id']}#{mapping['provider_type']}"
    provider_claim = f"{mapping['provider_type']}#{mapping['entity_type']}#{mapping['provider_entity_id']}"
    record = {
        **mapping,
        "status": ARCHIVED,
        "metadata": {**(mapping.get("metadata") or {}), "unlinked": reason},
        "updated_at": iso(utcnow()),
        "updated_by": actor,
        "version": int(mapping["version"]) + 1,
    }
    try:
        repo.replace(
            scope,
            record,
            int(mapping["version"]),
            extra_ops=[
                repo.release_op(scope, "entity", entity_claim, mapping["id"]),
                repo.release_op(scope, "provider", provider_claim, mapping["id"]),
                repo.table.update_op(_unlinked_pk(scope), entity_claim, "ADD unlinks :one", values={":one": 1}),
            ],
        )
    except (VersionConflict, ConditionFailed):
        return False
    return True


def _unlinked_pk(scope: Scope) -> str:
    return f"{scope.prefix}#eim#unlinked"


def unlinks(scope: Scope, entity_type: str, entity_id: str, provider: str) -> int:
    """How many times this entity's link to the provider was retired (0 when never)."""
    item = _repo().table.get(_unlinked_pk(scope), f"{entity_type}#{entity_id}#{provider}")
    return int(item["unlinks"]) if item else 0


def update_metadata(scope: Scope, mapping: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` into a mapping's metadata (optimistic; unchanged metadata writes nothing)."""
    merged = {**(mapping.get("metadata") or {}), **changes}
    if merged == (mapping.get("metadata") or {}):
        return mapping
    record = {**mapping, "metadata": merged, "updated_at": iso(utcnow()), "version": int(mapping["version"]) + 1}
    return _repo().replace(scope, record, int(mapping["version"]))


def for_entity(scope: Scope, entity_type: str, entity_id: str) -> list[dict[str, Any]]:
    repo = _repo()
    claims = repo.table.query(f"{scope.prefix}#eim#entity", sk_prefix=f"{entity_type}#{entity_id}#")
    found = repo.get_many(scope, [c["entity_id"] for c in claims])
    return [found[c["entity_id"]] for c in claims if c["entity_id"] in found]


def mapping_out(record: dict[str, Any]) -> dict[str, Any]:
    return {
        key: record.get(key)
        for key in (
            "id",
            "entity_type",
            "entity_id",
            "provider_type",
            "provider_entity_id",
            "metadata",
            "environment_id",
            "tenant_id",
            "status",
            "created_at",
            "updated_at",
            "created_by",
            "updated_by",
        )
    }
