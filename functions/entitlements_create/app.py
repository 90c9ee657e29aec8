"""POST /entitlements: what a plan grants for a feature (201)."""

from billing.http import Request, api
from billing.schemas.entitlements import EntitlementCreate, entitlement_out
from billing.services import entitlements


@api(status=201, body=EntitlementCreate)
def lambda_handler(req: Request) -> dict:
    return entitlement_out(entitlements.create(req.scope, req.body))
