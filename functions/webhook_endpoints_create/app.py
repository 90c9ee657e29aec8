"""POST /webhooks/endpoints: register an endpoint; the answer shows its signing secret, once (201)."""

from billing.http import Request, api
from billing.schemas.webhook_endpoints import EndpointCreate, endpoint_out
from billing.services import webhook_endpoints


@api(status=201, body=EndpointCreate)
def lambda_handler(req: Request) -> dict:
    record, secret = webhook_endpoints.create(req.scope, req.body)
    return endpoint_out(record, secret)
