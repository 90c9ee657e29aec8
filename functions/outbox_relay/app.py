"""The outbox table's stream: every inserted message becomes one queued delivery per subscribed endpoint."""

from typing import Any

from billing.observability import logger, metrics
from billing.services import webhook_delivery


@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return webhook_delivery.relay(event.get("Records") or [])
