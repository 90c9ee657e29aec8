"""Scheduled: queue one message per subscription whose current period ended more than the grace period ago."""

from typing import Any

from billing import wiring
from billing.observability import logger, metrics
from billing.services import invoicing
from billing.settings import get_settings
from billing.timeutil import utcnow


@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    queue_url = get_settings().invoice_queue_url
    if not queue_url:
        raise RuntimeError("INVOICE_QUEUE_URL is not set")
    return invoicing.find_due(wiring.client("sqs"), queue_url, utcnow())
