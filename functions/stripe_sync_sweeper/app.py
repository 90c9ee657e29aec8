"""Scheduled: queue the Stripe sync of every finalized invoice whose sync is still pending (a missed enqueue,
a sync that was skipped for a transient reason). The outbox item makes this idempotent."""

from typing import Any

from billing.observability import logger, metrics
from billing.services import invoice_sync
from billing.timeutil import utcnow


@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    queued = invoice_sync.sweep(utcnow())
    if queued:
        metrics.add_metric(name="StripeSyncRequeued", unit="Count", value=queued)
    return {"queued": queued}
