"""DELETE /webhooks/endpoints/{id}: delete an endpoint; its pending deliveries are skipped (204)."""

from billing.http import Request, api, response
from billing.services import webhook_endpoints


@api()
def lambda_handler(req: Request) -> dict:
    webhook_endpoints.delete(req.scope, req.param("id"))
    return response(204)
