"""SQS consumers: Powertools ``BatchProcessor`` with partial batch failures, one message = one unit of work."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from billing.observability import logger, metrics


def consumer(work: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Turn ``work(message_body_dict)`` into a Lambda handler that reports only failed messages for retry."""
    # A batch whose every message failed is reported the same way (not raised), so the Lambda ends cleanly and
    # exactly the failed messages are retried; behaviour is the same whatever the batch size.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def record_handler(record: SQSRecord) -> None:
        work(json.loads(record.body))

    @metrics.log_metrics(raise_on_empty_metrics=False)
    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        result: dict[str, Any] = dict(
            process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
        )
        return result

    wrapped: Callable[[dict[str, Any], Any], dict[str, Any]] = handler
    return wrapped
