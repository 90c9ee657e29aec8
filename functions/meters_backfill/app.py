"""SQS consumer: back-fill a meter's counters from the stored events (one message = one meter, or a part of it)."""

import json

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from billing.observability import logger, metrics
from billing.services import backfill

processor = BatchProcessor(event_type=EventType.SQS)
_context = None


def record_handler(record: SQSRecord) -> None:
    remaining = _context.get_remaining_time_in_millis if _context is not None else None
    backfill.run(json.loads(record.body), remaining)


@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict, context) -> dict:
    global _context
    _context = context
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
