"""Customers: create, read, update, archive. ``external_id`` is unique per environment.

Changes made through the API go to Stripe through the sync queue (``stripe_sync``): a create when outbound customer
sync is on; an update or an archive when the customer is linked to a Stripe customer (or outbound sync is on).
Changes coming from Stripe (``apply_from_stripe``) are written here and never queued back out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from billing.errors import AlreadyExists, NotFound, ValidationFailed, VersionConflict, not_found
from billing.ids import new_id
from billing.observability import logger, metrics
from billing.schemas.customers import CustomerCreate, CustomerFilter, CustomerUpdate
from billing.scope import Scope
from billing.services import mappings, stripe_sync
from billing.store import catalog
from billing.store.dynamo import ConditionFailed
from billing.store.entities import ACTIVE, ARCHIVED
from billing.timeutil import iso, parse_iso, utcnow

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
        _sync_out(scope, created["id"])
    return created


def _sync_out(scope: Scope, customer_id: str, *, linked_too: bool = False) -> None:
    try:
        stripe_sync.request_customer_sync(scope, customer_id, linked_too=linked_too)
    except Exception:
        # The customer is written; its Stripe customer is created (or brought up to date) when next needed (card
        # setup, invoice sync, the next change), so a queue failure never fails the request.
        logger.exception("could not queue the customer's Stripe sync", extra={"customer_id": customer_id})


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


def update(
    scope: Scope,
    current: dict[str, Any],
    request: CustomerUpdate,
    actor: str = "api",
    *,
    stripe_as_of: int | None = None,
) -> dict[str, Any]:
    if current.get("status") != ACTIVE:
        raise NotFound(f"customer {current['id']} is archived", {"entity": "customer", "id": current["id"]})
    changes = request.model_dump(exclude_unset=True, exclude_none=True)
    record = {**current, **changes, "updated_at": iso(utcnow()), "updated_by": actor}
    if stripe_as_of is not None:
        record["stripe_as_of"] = stripe_as_of
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
        updated = repo.replace(scope, record, int(current["version"]), extra_ops=extra)
    except ConditionFailed:
        # Only the claim of the new external id can fail here: someone else holds it.
        raise AlreadyExists(
            f"customer with external_id {new_external!r} already exists",
            {"entity": "customer", "field": "external_id", "value": new_external},
        ) from None
    if actor != STRIPE_ACTOR:
        _sync_out(scope, current["id"], linked_too=True)
    return updated


STRIPE_ACTOR = "stripe"
_FROM_STRIPE_ADDRESS = {
    "line1": "address_line1",
    "line2": "address_line2",
    "city": "address_city",
    "state": "address_state",
    "postal_code": "address_postal_code",
    "country": "address_country",
}


def stripe_changes(current: dict[str, Any], stripe_customer: dict[str, Any]) -> dict[str, Any]:
    """Name, email and address of a Stripe customer that differ from ours (Stripe's empty fields are not copied)."""
    theirs: dict[str, Any] = {}
    for field in ("name", "email"):
        if stripe_customer.get(field):
            theirs[field] = stripe_customer[field]
    for their_key, ours in _FROM_STRIPE_ADDRESS.items():
        value = (stripe_customer.get("address") or {}).get(their_key)
        if value:
            theirs[ours] = value
    return {k: v for k, v in theirs.items() if current.get(k) != v}


def _older(current: dict[str, Any], as_of: datetime) -> bool:
    """Whether a Stripe snapshot taken at ``as_of`` is older than what we hold: older than the last snapshot applied,
    or than a change made here (which its own outbound sync takes to Stripe)."""
    applied = current.get("stripe_as_of")
    if applied is not None and int(as_of.timestamp()) < int(applied):
        return True
    # Stripe times events to the second: a change of ours in the same second is not known to be newer.
    ours = parse_iso(current["updated_at"]).replace(microsecond=0)
    return current.get("updated_by") != STRIPE_ACTOR and ours > as_of


def apply_from_stripe(scope: Scope, customer_id: str, stripe_customer: dict[str, Any], as_of: datetime) -> str:
    """Copy a linked Stripe customer's name, email and address onto ours; nothing is queued back to Stripe.

    Events carry whole snapshots, so only the newest matters: one older than the last snapshot applied, or than our
    own last change (``as_of``, the event's time, before ``updated_at``), is not applied; ours is newer and its own
    sync takes it to Stripe. Values our API would refuse are not copied.
    """
    for _ in range(4):
        current = catalog.customers().find(scope, customer_id)
        if current is None or current.get("status") != ACTIVE:
            return "ignored_archived"
        wanted = stripe_changes(current, stripe_customer)
        if not wanted:
            return "unchanged"  # e.g. our own update coming back from Stripe
        if _older(current, as_of):
            return "ignored_older_than_ours"
        try:
            request = CustomerUpdate.model_validate(wanted)
        except ValueError:
            logger.warning("Stripe customer change refused by validation", extra={"customer_id": customer_id})
            return "rejected"
        try:
            update(scope, current, request, actor=STRIPE_ACTOR, stripe_as_of=int(as_of.timestamp()))
        except VersionConflict:
            continue
        metrics.add_metric(name="CustomerUpdatedFromStripe", unit="Count", value=1)
        return "updated"
    raise VersionConflict(f"customer {customer_id} kept changing; retry")


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
    _sync_out(scope, customer_id, linked_too=True)
    return archived
