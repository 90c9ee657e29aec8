"""Function URL ``POST /webhooks/stripe/{tenant_id}/{environment_id}``: verify Stripe's signature on the raw body,
queue the event, answer 200. Anything else answers 400 (413 when too large), logs a warning and queues nothing."""

import json
import re
from typing import Any

from billing.errors import BillingError, MethodNotAllowed, NotFound, PayloadTooLarge, ValidationFailed
from billing.observability import logger, metrics
from billing.services import webhooks

_PATH = re.compile(r"^/webhooks/stripe/([^/]+)/([^/]+)/?$")


def _reply(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


def _error(err: BillingError) -> dict[str, Any]:
    return _reply(err.http_status, err.envelope())


@metrics.log_metrics(raise_on_empty_metrics=False)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    http = event.get("requestContext", {}).get("http", {})
    match = _PATH.match(event.get("rawPath") or "")
    if match is None:
        return _error(NotFound("no webhook endpoint at this path"))
    if http.get("method") != "POST":
        return _error(MethodNotAllowed("webhooks are POSTed"))
    tenant_id, environment_id = match.groups()
    try:
        accepted = webhooks.accept(tenant_id, environment_id, event.get("headers") or {}, webhooks.raw_body(event))
    except webhooks.Rejected as rejected:
        webhooks.reject(rejected.reason, tenant_id, environment_id)
        if rejected.status == 413:
            return _error(PayloadTooLarge("the webhook body is too large", {"reason": rejected.reason}))
        return _error(ValidationFailed("the webhook was rejected", {"reason": rejected.reason}))
    metrics.add_metric(name="WebhookAccepted", unit="Count", value=1)
    return _reply(200, {"received": True, "id": accepted.stripe_event_id})
