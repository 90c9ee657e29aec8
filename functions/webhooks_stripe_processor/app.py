"""SQS consumer of the webhook queue: one message applies one Stripe event once; failures are retried, then DLQ'd."""

from billing.services import webhooks
from billing.sqs import consumer

lambda_handler = consumer(webhooks.handle_message)
