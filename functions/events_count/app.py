"""DynamoDB stream consumer of the events table: counts and indexes new events in batches, exactly once
(billing.services.counting). An error fails the batch: the event source retries it, splits it, and finally sends
its description to the on-failure queue."""

from typing import Any

from billing.observability import logger, metrics
from billing.services import counting


@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return counting.handle(event)
