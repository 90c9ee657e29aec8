"""GET /entitlements/{id}: one entitlement."""

from billing.http import Request, api
from billing.schemas.entitlements import entitlement_out
from billing.services import entitlements


@api()
def lambda_handler(req: Request) -> dict:
    return entitlement_out(entitlements.get(req.scope, req.param("id")))
