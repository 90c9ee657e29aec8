"""Outbound sync to Stripe. Each operation is idempotent: a retry finds the mapping or replays the same request.

Customer sync: with an active Stripe connection whose ``sync_config.customer.outbound`` is on, a customer is
created in Stripe once. An existing Stripe customer is reused, never duplicated: one named in the request's
``integration_entity_mapping`` is linked directly, and otherwise Stripe is searched for a customer carrying our id in
its metadata before one is created (with an idempotency key derived from our customer id).

Metrics of the sync worker (service ``stripe.sync``): ``StripeSyncSucceeded`` per object synced, ``StripeSyncFailed``
per message that failed (it is retried by the queue, then dead-lettered), ``StripeSyncRetried`` per message delivered
again (SQS ``ApproximateReceiveCount`` > 1). The failure-rate alarm divides the first two.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from billing import stripe_gateway, wiring
from billing.errors import InvalidOperation, NotFound
from billing.observability import logger, metrics
from billing.scope import Scope
from billing.services import connections, mappings
from billing.settings import get_settings
from billing.store import catalog

PROVIDER = "stripe"
CUSTOMER_SYNC = "customer.sync"


def _outbound(connection: dict[str, Any] | None, entity: str) -> bool:
    if connection is None:
        return False
    return bool(((connection.get("sync_config") or {}).get(entity) or {}).get("outbound"))


def request_customer_sync(scope: Scope, customer_id: str) -> bool:
    """Queue a customer's sync when the environment syncs customers to Stripe. Returns whether it queued."""
    if not _outbound(connections.active(scope, PROVIDER), "customer"):
        return False
    queue_url = get_settings().stripe_sync_queue_url
    if not queue_url:
        logger.warning("customer sync wanted but no sync queue is configured", extra={"customer_id": customer_id})
        return False
    message = {
        "kind": CUSTOMER_SYNC,
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "customer_id": customer_id,
    }
    wiring.client("sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps(message))
    return True


def _customer_params(customer: dict[str, Any], scope: Scope) -> dict[str, Any]:
    params: dict[str, Any] = {
        "name": customer.get("name"),
        "metadata": {
            "flexprice_customer_id": customer["id"],
            "flexprice_external_id": customer["external_id"],
            "flexprice_environment_id": scope.environment_id,
        },
    }
    if customer.get("email"):
        params["email"] = customer["email"]
    address = {
        "line1": customer.get("address_line1"),
        "line2": customer.get("address_line2"),
        "city": customer.get("address_city"),
        "state": customer.get("address_state"),
        "postal_code": customer.get("address_postal_code"),
        "country": customer.get("address_country"),
    }
    address = {k: v for k, v in address.items() if v}
    if address:
        params["address"] = address
    return params


def sync_customer(scope: Scope, customer_id: str, *, force: bool = False) -> dict[str, Any] | None:
    """Ensure the customer exists in Stripe; return its mapping, or None when this environment doesn't sync.

    ``force`` syncs even when customer outbound sync is off (invoice sync and card setup need the customer).
    """
    existing = mappings.find(scope, "customer", customer_id, PROVIDER)
    if existing is not None:
        return existing
    connection = connections.active(scope, PROVIDER)
    if connection is None or not (force or _outbound(connection, "customer")):
        return None
    customer = catalog.customers().find(scope, customer_id)
    if customer is None:
        raise NotFound(f"customer {customer_id} was not found", {"entity": "customer", "id": customer_id})
    client = stripe_gateway.client_for(connections.stripe_credentials(scope, connection)["secret_key"])
    found = client.v1.customers.search({"query": f"metadata['flexprice_customer_id']:'{customer_id}'", "limit": 1})
    if found.data:
        stripe_id = found.data[0].id
        logger.info("reusing Stripe customer", extra={"customer_id": customer_id, "stripe_customer": stripe_id})
    else:
        created = client.v1.customers.create(
            _customer_params(customer, scope),
            stripe_gateway.options(stripe_gateway.idempotency_key("customer.create", customer_id)),
        )
        stripe_id = created.id
        metrics.add_metric(name="StripeCustomerCreated", unit="Count", value=1)
    mapping = mappings.link(scope, "customer", customer_id, PROVIDER, stripe_id, {"source": "outbound"})
    metrics.add_metric(name="StripeSyncSucceeded", unit="Count", value=1)
    return mapping


def stripe_customer(scope: Scope, customer_id: str) -> str:
    """The Stripe customer of one of ours, synced now if it is not yet (card setup, payments, invoice sync)."""
    mapping = sync_customer(scope, customer_id, force=True)
    if mapping is None:
        raise InvalidOperation(
            "no active Stripe connection in this environment: create one with POST /connections first",
            {"provider": PROVIDER, "customer_id": customer_id},
        )
    return str(mapping["provider_entity_id"])


def handle_message(body: dict[str, Any]) -> None:
    """One message of the Stripe sync queue. A failure is counted and raised: the queue retries the message."""
    try:
        _dispatch(body)
    except Exception as exc:
        metrics.add_metric(name="StripeSyncFailed", unit="Count", value=1)
        logger.warning(
            "Stripe sync failed; the message will be retried",
            extra={
                "kind": body.get("kind"),
                "entity_id": body.get("invoice_id") or body.get("customer_id"),
                "error": f"{type(exc).__name__}: {exc}",
            },
        )
        raise


def _dispatch(body: dict[str, Any]) -> None:
    scope = Scope(body["tenant_id"], body["environment_id"])
    if body.get("kind") == CUSTOMER_SYNC:
        sync_customer(scope, body["customer_id"])
        return
    from billing.services import invoice_sync  # imports this module: resolved at call time

    if body.get("kind") == invoice_sync.INVOICE_SYNC:
        invoice_sync.sync_invoice(scope, body["invoice_id"])
        return
    raise ValueError(f"unknown sync message kind {body.get('kind')!r}")


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def counting_redeliveries(handler: Handler) -> Handler:
    """Wrap the worker's SQS handler: count the batch's redelivered messages as ``StripeSyncRetried``.

    A redelivery is a message whose ``ApproximateReceiveCount`` is above 1: an earlier delivery failed (or timed out)
    and the queue handed it out again. The metric is added before ``handler`` runs, so its ``log_metrics`` flush
    publishes it with the rest of the invocation's metrics.
    """

    def wrapped(event: dict[str, Any], context: Any) -> dict[str, Any]:
        again = sum(
            1
            for record in event.get("Records") or []
            if int((record.get("attributes") or {}).get("ApproximateReceiveCount") or 1) > 1
        )
        if again:
            metrics.add_metric(name="StripeSyncRetried", unit="Count", value=again)
        return handler(event, context)

    return wrapped
