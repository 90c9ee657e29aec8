"""SQS consumer of the Stripe sync queue: one message syncs one object; failures are retried, then DLQ'd."""

from billing.services import stripe_sync
from billing.sqs import consumer

lambda_handler = stripe_sync.counting_redeliveries(consumer(stripe_sync.handle_message))
