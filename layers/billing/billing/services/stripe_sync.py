"""Our customers at Stripe, through this environment's Stripe (``billing.stripe_edge``).

Which Stripe customer stands for one of ours is the entity mapping (``mappings``). Every write resumes from what
exists, so a sync retried a minute or a day later creates nothing twice:

1. the stored mapping, else a Stripe customer carrying our id in its metadata (``customers.search``), else a new
   one. The create sends only what never changes (our customer and environment ids) under a key derived from our id
   and those parameters: a retry within Stripe's 24 hours replays the same create whatever was renamed in between
   (never an ``idempotency_error``), and a retry after 24 hours finds the customer by its metadata.
2. then the fields we own (name, email, address, our ids and the archived flag in metadata) are compared with the
   Stripe customer and only the differing ones are sent, under a key that names our customer's version. A sync that
   would change nothing at Stripe sends nothing, so our own update coming back as ``customer.updated`` ends there.

``request_customer_sync`` queues a ``customer.sync`` message: on create when outbound customer sync is on, and on
update and archive when the customer is linked (or outbound sync is on). Archiving keeps the Stripe customer (its
invoices, payments and cards are Stripe's records of money) and marks it ``flexprice_archived=true``; an archived
customer is never created at Stripe. A Stripe customer found deleted is unlinked and a fresh one is created.

Metrics of the sync worker (service ``stripe.sync``): ``StripeSyncSucceeded`` per object synced; ``StripeSyncFailed``
and ``StripeSyncRetried`` are counted by the queue's consumer (``sync_queue``).
"""

from __future__ import annotations

import json
from typing import Any

from billing import stripe_edge, wiring
from billing.errors import InvalidOperation, NotFound
from billing.observability import logger, metrics
from billing.scope import Scope
from billing.services import mappings
from billing.settings import get_settings
from billing.store import catalog
from billing.store.entities import ACTIVE

PROVIDER = stripe_edge.PROVIDER
CUSTOMER_SYNC = "customer.sync"
ARCHIVED_FLAG = "flexprice_archived"
_ADDRESS = {
    "line1": "address_line1",
    "line2": "address_line2",
    "city": "address_city",
    "state": "address_state",
    "postal_code": "address_postal_code",
    "country": "address_country",
}


def message(scope: Scope, customer_id: str, *, refresh: bool = False) -> dict[str, Any]:
    """A sync message; ``refresh`` (an update or an archive) compares a linked customer with Stripe's, otherwise a
    linked customer needs nothing (a redelivered create costs no request)."""
    body: dict[str, Any] = {
        "kind": CUSTOMER_SYNC,
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "customer_id": customer_id,
    }
    if refresh:
        body["refresh"] = True
    return body


def wanted(scope: Scope, customer_id: str, *, linked_too: bool = False) -> bool:
    """Whether a change of this customer goes to Stripe: outbound customer sync is on, or (``linked_too``) the
    customer already has a Stripe customer, which is then kept current."""
    connection = stripe_edge.active_connection(scope)
    if connection is None:
        return False
    if stripe_edge.syncs(connection, "customer"):
        return True
    return linked_too and stripe_edge.linked_customer(scope, customer_id) is not None


def request_customer_sync(scope: Scope, customer_id: str, *, linked_too: bool = False) -> bool:
    """Queue a customer's sync when its changes go to Stripe (``wanted``). Returns whether it queued."""
    if not wanted(scope, customer_id, linked_too=linked_too):
        return False
    queue_url = get_settings().stripe_sync_queue_url
    if not queue_url:
        logger.warning("customer sync wanted but no sync queue is configured", extra={"customer_id": customer_id})
        return False
    body = message(scope, customer_id, refresh=linked_too)
    wiring.client("sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
    return True


# ---------------------------------------------------------------------------------------------- what Stripe holds


def identity(scope: Scope, customer_id: str) -> dict[str, str]:
    """The metadata a Stripe customer is created with: what never changes, so the create's key never does either."""
    return {"flexprice_customer_id": customer_id, "flexprice_environment_id": scope.environment_id}


def desired(scope: Scope, customer: dict[str, Any]) -> dict[str, Any]:
    """What the Stripe customer should say, from our customer (fields we have no value for are left alone)."""
    fields: dict[str, Any] = {}
    if customer.get("name"):
        fields["name"] = customer["name"]
    if customer.get("email"):
        fields["email"] = customer["email"]
    address = {theirs: customer.get(ours) for theirs, ours in _ADDRESS.items() if customer.get(ours)}
    if address:
        fields["address"] = address
    metadata = {**identity(scope, customer["id"]), "flexprice_external_id": str(customer.get("external_id") or "")}
    if customer.get("status") != ACTIVE:
        metadata[ARCHIVED_FLAG] = "true"
    fields["metadata"] = {k: v for k, v in metadata.items() if v}
    return fields


def changes(want: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """The update that makes ``theirs`` (a Stripe customer) say ``want``; empty when it already does."""
    params: dict[str, Any] = {}
    for name in ("name", "email"):
        if name in want and want[name] != theirs.get(name):
            params[name] = want[name]
    if "address" in want:
        current = {k: v for k, v in (theirs.get("address") or {}).items() if v}
        if want["address"] != current:
            params["address"] = {key: want["address"].get(key) or "" for key in _ADDRESS}
    their_metadata = theirs.get("metadata") or {}
    metadata = {k: v for k, v in want.get("metadata", {}).items() if their_metadata.get(k) != v}
    if metadata:
        params["metadata"] = metadata
    return params


def _plain(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


# ---------------------------------------------------------------------------------------------- outbound


def _find_or_create(edge: stripe_edge.Stripe, scope: Scope, customer_id: str) -> dict[str, Any]:
    client = edge.client
    found = client.v1.customers.search({"query": f"metadata['flexprice_customer_id']:'{customer_id}'", "limit": 1})
    if found.data:
        logger.info("reusing Stripe customer", extra={"customer_id": customer_id, "stripe_customer": found.data[0].id})
        return _plain(found.data[0])
    params = {"metadata": identity(scope, customer_id)}
    # A customer replacing one deleted at Stripe gets a key of its own: the first create's key would replay it.
    generation = mappings.unlinks(scope, "customer", customer_id, PROVIDER)
    key = stripe_edge.key("customer.create", customer_id, *([str(generation)] if generation else []), params=params)
    created = client.v1.customers.create(params, stripe_edge.options(key))
    metrics.add_metric(name="StripeCustomerCreated", unit="Count", value=1)
    return _plain(created)


def _push(edge: stripe_edge.Stripe, scope: Scope, customer: dict[str, Any], theirs: dict[str, Any]) -> bool:
    """Send what differs; returns whether anything was sent."""
    params = changes(desired(scope, customer), theirs)
    if not params:
        return False
    version = str(customer.get("version") or 0)
    edge.client.v1.customers.update(
        theirs["id"],
        params,
        stripe_edge.options(stripe_edge.key("customer.update", customer["id"], theirs["id"], version, params=params)),
    )
    metrics.add_metric(name="StripeCustomerUpdated", unit="Count", value=1)
    return True


def _current(edge: stripe_edge.Stripe, stripe_id: str) -> dict[str, Any] | None:
    """The Stripe customer, or None when Stripe deleted it (or never had it)."""
    try:
        theirs = _plain(edge.client.v1.customers.retrieve(stripe_id))
    except stripe_edge.sdk().InvalidRequestError as err:
        if stripe_edge.missing(err):
            return None
        raise
    return None if theirs.get("deleted") else theirs


def forget_deleted(scope: Scope, stripe_customer_id: str, reason: str = "deleted at Stripe") -> str | None:
    """Unlink the customer of ours that a deleted Stripe customer stood for. Returns our customer id, if any."""
    mapping = mappings.find_by_provider_id(scope, PROVIDER, "customer", stripe_customer_id)
    if mapping is None:
        return None
    if mappings.unlink(scope, mapping, reason, actor="stripe"):
        metrics.add_metric(name="StripeCustomerUnlinked", unit="Count", value=1)
        logger.info(
            "Stripe customer unlinked",
            extra={"customer_id": mapping["entity_id"], "stripe_customer": stripe_customer_id, "reason": reason},
        )
    return str(mapping["entity_id"])


def sync_customer(
    scope: Scope, customer_id: str, *, force: bool = False, refresh: bool = False
) -> dict[str, Any] | None:
    """Make the Stripe customer of one of ours exist (and, with ``refresh``, say what ours says); its mapping, or
    None when this environment has no Stripe or does not sync this customer.

    ``force`` creates the Stripe customer even when outbound customer sync is off (invoice sync and card setup need
    it). Without ``refresh`` a linked customer is returned as linked, with no call to Stripe.
    """
    existing = mappings.find(scope, "customer", customer_id, PROVIDER)
    if existing is not None and not refresh:
        return existing
    edge = stripe_edge.connect(scope)
    if edge is None:
        return existing
    customer = catalog.customers().find(scope, customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id} was not found", {"entity": "customer", "id": customer_id})
    theirs: dict[str, Any] | None = None
    if existing is not None:
        theirs = _current(edge, existing["provider_entity_id"])
        if theirs is None:
            forget_deleted(scope, existing["provider_entity_id"], "deleted at Stripe (found on sync)")
            existing = None
    if existing is None:
        if customer.get("status") != ACTIVE or not (force or edge.syncs("customer")):
            return None
        theirs = _find_or_create(edge, scope, customer_id)
        existing = mappings.link(scope, "customer", customer_id, PROVIDER, str(theirs["id"]), {"source": "outbound"})
    assert theirs is not None
    _push(edge, scope, customer, theirs)
    metrics.add_metric(name="StripeSyncSucceeded", unit="Count", value=1)
    return existing


def stripe_customer(scope: Scope, customer_id: str) -> str:
    """The Stripe customer of one of ours, created now if it has none (card setup, payments, invoice sync)."""
    mapping = sync_customer(scope, customer_id, force=True)
    if mapping is None:
        raise InvalidOperation(
            "no active Stripe connection in this environment: create one with POST /connections first",
            {"provider": PROVIDER, "customer_id": customer_id},
        )
    return str(mapping["provider_entity_id"])


def relink(scope: Scope, customer_id: str, stripe_customer_id: str) -> str:
    """Stripe says the linked customer no longer exists: drop the link and create (or find) a fresh one."""
    forget_deleted(scope, stripe_customer_id, "missing at Stripe")
    return stripe_customer(scope, customer_id)
