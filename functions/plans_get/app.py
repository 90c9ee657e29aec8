"""GET /plans/{id}: one plan with its active prices."""

from billing.http import Request, api
from billing.schemas.plans import plan_out
from billing.services import plans, prices


@api()
def lambda_handler(req: Request) -> dict:
    plan = plans.get(req.scope, req.param("id"))
    return plan_out(plan, prices.of_plan(req.scope, plan["id"]))
