"""GET /plans/{id}/entitlements: what the plan grants."""

from billing.http import Request, api
from billing.pagination import page
from billing.schemas.entitlements import entitlement_out
from billing.services import entitlements


@api()
def lambda_handler(req: Request) -> dict:
    found = entitlements.for_plan(req.scope, req.param("id"))
    return page(found, len(found) or 1, 0, entitlement_out)
