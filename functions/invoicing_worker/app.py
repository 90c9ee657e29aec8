"""SQS consumer of the invoice queue: one message invoices one subscription's due periods, oldest first; each
finalized invoice's Stripe sync is queued at once (the sync sweeper catches any enqueue that fails)."""

from typing import Any

from billing.observability import logger
from billing.scope import Scope
from billing.services import invoice_sync, invoicing
from billing.sqs import consumer
from billing.timeutil import utcnow


def work(body: dict[str, Any]) -> None:
    invoice_ids = invoicing.handle_message(body, utcnow())
    scope = Scope(str(body["tenant_id"]), str(body["environment_id"]))
    for invoice_id in invoice_ids:
        try:
            invoice_sync.request_invoice_sync(scope, invoice_id)
        except Exception:
            logger.exception("could not queue the invoice's Stripe sync", extra={"invoice_id": invoice_id})


lambda_handler = consumer(work)
