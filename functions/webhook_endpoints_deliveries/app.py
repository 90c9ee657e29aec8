"""GET /webhooks/endpoints/{id}/deliveries: the delivery log, newest message first."""

from billing.http import Request, api
from billing.schemas.webhook_endpoints import DeliveryFilter, delivery_out
from billing.services import webhook_endpoints


@api()
def lambda_handler(req: Request) -> dict:
    criteria = req.query_model(DeliveryFilter)
    found = webhook_endpoints.deliveries(req.scope, req.param("id"), criteria.limit)
    return {"items": [delivery_out(d) for d in found]}
