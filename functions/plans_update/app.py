"""PUT /plans/{id}: change name, description, lookup key, display order or metadata."""

from billing.http import Request, api
from billing.schemas.plans import PlanUpdate, plan_out
from billing.services import plans


@api(body=PlanUpdate)
def lambda_handler(req: Request) -> dict:
    return plan_out(plans.update(req.scope, req.param("id"), req.body))
