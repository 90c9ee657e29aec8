"""POST /plans: create a plan, optionally with inline prices, in one transaction (201)."""

from billing.http import Request, api
from billing.schemas.plans import PlanCreate, plan_out
from billing.services import plans


@api(status=201, body=PlanCreate)
def lambda_handler(req: Request) -> dict:
    plan, prices = plans.create(req.scope, req.body)
    return plan_out(plan, prices)
