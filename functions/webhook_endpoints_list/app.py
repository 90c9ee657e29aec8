"""GET /webhooks/endpoints: the environment's endpoints."""

from billing.http import Request, api
from billing.pagination import page
from billing.schemas.webhook_endpoints import EndpointFilter, endpoint_out
from billing.services import webhook_endpoints


@api()
def lambda_handler(req: Request) -> dict:
    criteria = req.query_model(EndpointFilter)
    return page(webhook_endpoints.search(req.scope, criteria), criteria.limit, criteria.offset, endpoint_out)
