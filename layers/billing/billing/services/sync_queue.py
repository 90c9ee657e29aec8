"""The Stripe sync queue's consumer: one message syncs one object (``customer.sync`` or ``invoice.sync``).

It sits above both syncs, so neither imports the other to dispatch. A failure is counted (``StripeSyncFailed``) and
raised: the queue retries the message, then dead-letters it. A message delivered again (SQS
``ApproximateReceiveCount`` > 1) is counted as ``StripeSyncRetried``. The failure-rate alarm divides
``StripeSyncFailed`` by ``StripeSyncSucceeded``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from billing.observability import logger, metrics
from billing.scope import Scope
from billing.services import invoice_sync, stripe_sync


def dispatch(body: dict[str, Any]) -> None:
    scope = Scope(body["tenant_id"], body["environment_id"])
    kind = body.get("kind")
    if kind == stripe_sync.CUSTOMER_SYNC:
        stripe_sync.sync_customer(scope, body["customer_id"], refresh=bool(body.get("refresh")))
    elif kind == invoice_sync.INVOICE_SYNC:
        invoice_sync.sync_invoice(scope, body["invoice_id"])
    else:
        raise ValueError(f"unknown sync message kind {kind!r}")


def handle_message(body: dict[str, Any]) -> None:
    """One message of the Stripe sync queue. A failure is counted and raised: the queue retries the message."""
    try:
        dispatch(body)
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
