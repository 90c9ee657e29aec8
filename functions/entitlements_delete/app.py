"""DELETE /entitlements/{id}: the plan no longer grants the feature."""

from billing.http import Request, api
from billing.services import entitlements


@api()
def lambda_handler(req: Request) -> dict:
    entitlements.delete(req.scope, req.param("id"))
    return {"message": "entitlement deleted"}
