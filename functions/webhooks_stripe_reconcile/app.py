"""Scheduled: list each Stripe connection's events since its cursor and apply the ones webhooks missed."""

from typing import Any

from billing.observability import logger, metrics
from billing.services import reconciliation


@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    return reconciliation.run(context)
