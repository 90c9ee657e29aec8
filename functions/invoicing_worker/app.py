"""SQS consumer of the invoice queue: one message invoices one subscription's due periods, oldest first."""

from typing import Any

from billing.services import invoicing
from billing.sqs import consumer
from billing.timeutil import utcnow


def work(body: dict[str, Any]) -> None:
    invoicing.handle_message(body, utcnow())


lambda_handler = consumer(work)
