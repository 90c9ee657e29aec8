"""GET /customers/external/{external_id}/entitlements: a customer's entitlements by its external id."""

from billing.http import Request, api
from billing.schemas.entitlements import customer_entitlements_out
from billing.services import entitlements


@api()
def lambda_handler(req: Request) -> dict:
    return customer_entitlements_out(entitlements.for_external_customer(req.scope, req.param("external_id")))
