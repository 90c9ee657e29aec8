"""PUT /webhooks/endpoints/{id}: change the URL, description, event types, or enable / disable it."""

from billing.http import Request, api
from billing.schemas.webhook_endpoints import EndpointUpdate, endpoint_out
from billing.services import webhook_endpoints


@api(body=EndpointUpdate)
def lambda_handler(req: Request) -> dict:
    return endpoint_out(webhook_endpoints.update(req.scope, req.param("id"), req.body))
