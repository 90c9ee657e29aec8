"""GET /customers/{id}/entitlements: what the customer may use, from every running subscription."""

from billing.http import Request, api
from billing.schemas.entitlements import customer_entitlements_out
from billing.services import entitlements


@api()
def lambda_handler(req: Request) -> dict:
    return customer_entitlements_out(entitlements.for_customer(req.scope, req.param("id")))
