"""SQS consumer of the Stripe sync queue: one message syncs one object; failures are retried, then DLQ'd."""

from billing.services import sync_queue
from billing.sqs import consumer

lambda_handler = sync_queue.counting_redeliveries(consumer(sync_queue.handle_message))
