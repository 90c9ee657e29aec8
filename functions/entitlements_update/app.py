"""PUT /entitlements/{id}: change whether it is enabled, its limit, reset period, softness or static value."""

from billing.http import Request, api
from billing.schemas.entitlements import EntitlementUpdate, entitlement_out
from billing.services import entitlements


@api(body=EntitlementUpdate)
def lambda_handler(req: Request) -> dict:
    return entitlement_out(entitlements.update(req.scope, req.param("id"), req.body))
