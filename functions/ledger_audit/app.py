"""Scheduled: audit every Stripe-connected environment's invoices against Stripe; publish LedgerMismatches."""

from typing import Any

from billing.observability import logger, metrics
from billing.services import ledger_audit


@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    remaining_ms = context.get_remaining_time_in_millis() if hasattr(context, "get_remaining_time_in_millis") else 0
    budget = max(remaining_ms / 1000 - 30, 10) if remaining_ms else 240
    return ledger_audit.run(budget_seconds=budget)
