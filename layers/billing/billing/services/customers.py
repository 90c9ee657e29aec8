"""Customers: create, read, update, archive. ``external_id`` is unique per environment."""

from __future__ import annotations

from typing import Any

from billing.errors import AlreadyExists, NotFound, ValidationFailed, not_found
from billing.ids import new_id
from billing.observability import logger, metrics
from billing.schemas.customers import CustomerCreate, CustomerFilter, CustomerUpdate
from billing.scope import Scope
from billing.services import mappings, stripe_sync
from billing.store import catalog
from billing.store.dynamo import ConditionFailed
from billing.store.entities import ACTIVE, ARCHIVED
from billing.timeutil import iso, utcnow

UNIQUE_FIELD = "external_id"


def create(scope: Scope, request: CustomerCreate, actor: str = "api") -> dict[str, Any]:
    now = iso(utcnow())
    record: dict[str, Any] = {
        "id": new_id("customer"),
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        **request.model_dump(exclude_none=True, exclude={"integration_entity_mapping"}),
        "timezone": request.timezone or "UTC",
        "metadata": request.metadata or {},
        "status": ACTIVE,
        "created_at": now,
        "updated_at": now,
        "created_by": actor,
        "updated_by": actor,
        "version": 1,
    }
    created = catalog.customers().create(scope, record, unique={UNIQUE_FIELD: request.external_id})
    metrics.add_metric(name="CustomerCreated", unit="Count", value=1)
    links = request.integration_entity_mapping or []
    for link in links:
        mappings.link(
            scope,
            "customer",
            created["id"],
            link.provider_type,
            link.provider_entity_id,
            {"source": "linked"},
        )
    if not links:
        try:
            stripe_sync.request_customer_sync(scope, created["id"])
        except Exception:
            # The customer exists; its Stripe customer is then created when first needed (card setup, invoice sync).
            logger.exception("could not queue the customer's Stripe sync", extra={"customer_id": created["id"]})
    return created


def get(scope: Scope, customer_id: str) -> dict[str, Any]:
    return catalog.customers().get(scope, customer_id)


def get_by_external_id(scope: Scope, external_id: str) -> dict[str, Any]:
    repo = catalog.customers()
    customer_id = repo.lookup_unique(scope, UNIQUE_FIELD, external_id)
    if customer_id is None:
        raise NotFound(
            f"customer with external_id {external_id!r} was not found",
            {"entity": "customer", "external_id": external_id},
        )
    found = repo.find(scope, customer_id)
    if found is None:
        raise not_found("customer", customer_id)
    return found


def resolve(scope: Scope, customer_id: str | None, external_id: str | None) -> dict[str, Any]:
    """Find a customer by id or by external id (the update call accepts either)."""
    if customer_id:
        return get(scope, customer_id)
    if external_id:
        return get_by_external_id(scope, external_id)
    raise ValidationFailed("id or external_customer_id is required")


def search(scope: Scope, criteria: CustomerFilter) -> list[dict[str, Any]]:
    return criteria.arrange([c for c in catalog.customers().list(scope) if criteria.keep(c)])


def update(scope: Scope, current: dict[str, Any], request: CustomerUpdate, actor: str = "api") -> dict[str, Any]:
    if current.get("status") != ACTIVE:
        raise NotFound(f"customer {current['id']} is archived", {"entity": "customer", "id": current["id"]})
    changes = request.model_dump(exclude_unset=True, exclude_none=True)
    record = {**current, **changes, "updated_at": iso(utcnow()), "updated_by": actor}
    record["version"] = int(current["version"]) + 1
    repo = catalog.customers()
    extra = []
    new_external = changes.get("external_id")
    if new_external and new_external != current["external_id"]:
        extra = [
            repo.claim_op(scope, UNIQUE_FIELD, new_external, current["id"]),
            repo.release_op(scope, UNIQUE_FIELD, current["external_id"], current["id"]),
        ]
    try:
        return repo.replace(scope, record, int(current["version"]), extra_ops=extra)
    except ConditionFailed:
        # Only the claim of the new external id can fail here: someone else holds it.
        raise AlreadyExists(
            f"customer with external_id {new_external!r} already exists",
            {"entity": "customer", "field": "external_id", "value": new_external},
        ) from None


def archive(scope: Scope, customer_id: str, actor: str = "api") -> dict[str, Any]:
    repo = catalog.customers()
    current = repo.get(scope, customer_id)
    if current.get("status") == ARCHIVED:
        return current
    record = {
        **current,
        "status": ARCHIVED,
        "updated_at": iso(utcnow()),
        "updated_by": actor,
        "version": int(current["version"]) + 1,
    }
    release = repo.release_op(scope, UNIQUE_FIELD, current["external_id"], current["id"])
    archived = repo.replace(scope, record, int(current["version"]), extra_ops=[release])
    metrics.add_metric(name="CustomerArchived", unit="Count", value=1)
    return archived
