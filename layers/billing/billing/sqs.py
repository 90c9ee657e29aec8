"""SQS consumers: Powertools ``BatchProcessor`` with partial batch failures, one message = one unit of work.

Running out of time: before each record the consumer asks the Lambda context how much time is left. When less
than the safety margin remains, that record and every later one of the batch are reported as failures without
being started, so SQS redelivers them after the visibility timeout instead of the runtime cutting one off halfway.
The margin is ``SAFETY_MARGIN_MS``, or a third of the time the invocation started with when that is less (a short
function still works through most of its batch; every invocation makes progress).

If the runtime kills the invocation anyway, no response reaches SQS and the WHOLE batch is redelivered,
including the records already done: every unit of work must be idempotent (they are: deterministic ids,
conditional writes, idempotency keys; see docs/operations.md, "Faults").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from billing.observability import logger, metrics

SAFETY_MARGIN_MS = 10_000
MARGIN_SHARE = 3  # at most 1/3 of the invocation's time is kept as margin


class OutOfTime(Exception):
    """The invocation has too little time left to start another record; SQS delivers it again."""


def _remaining_ms(context: Any) -> int | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return int(remaining()) if callable(remaining) else None


def consumer(work: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """Turn ``work(message_body_dict)`` into a Lambda handler that reports only failed messages for retry."""
    # A batch whose every message failed is reported the same way (not raised), so the Lambda ends cleanly and
    # exactly the failed messages are retried; behaviour is the same whatever the batch size.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    # Per invocation (a Lambda environment runs one at a time): the margin, records started and records deferred.
    state = {"margin": 0, "started": 0, "deferred": 0}

    def record_handler(record: SQSRecord, lambda_context: Any = None) -> None:
        remaining = None if state["deferred"] else _remaining_ms(lambda_context)
        if state["deferred"] or (remaining is not None and remaining < state["margin"]):
            state["deferred"] += 1
            raise OutOfTime(f"{remaining} ms left; message {record.message_id} is left for redelivery")
        state["started"] += 1
        work(json.loads(record.body))

    @metrics.log_metrics(raise_on_empty_metrics=False)
    @logger.inject_lambda_context(clear_state=True)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        initial = _remaining_ms(context)
        state["margin"] = SAFETY_MARGIN_MS if initial is None else min(SAFETY_MARGIN_MS, initial // MARGIN_SHARE)
        state["started"] = state["deferred"] = 0
        result: dict[str, Any] = dict(
            process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
        )
        if state["deferred"]:
            logger.warning(
                "invocation close to its timeout: records left for redelivery",
                extra={"deferred": state["deferred"], "done": state["started"]},
            )
            metrics.add_metric(name="BatchRecordsDeferred", unit="Count", value=state["deferred"])
        return result

    wrapped: Callable[[dict[str, Any], Any], dict[str, Any]] = handler
    return wrapped
