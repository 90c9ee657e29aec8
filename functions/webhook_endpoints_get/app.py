"""GET /webhooks/endpoints/{id}: one endpoint (never its secret)."""

from billing.http import Request, api
from billing.schemas.webhook_endpoints import endpoint_out
from billing.services import webhook_endpoints


@api()
def lambda_handler(req: Request) -> dict:
    return endpoint_out(webhook_endpoints.get(req.scope, req.param("id")))
