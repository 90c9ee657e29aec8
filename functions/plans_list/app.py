"""GET /plans: list with query filters and pagination (``expand=prices`` adds each plan's active prices)."""

from billing.http import Request, api
from billing.schemas.plans import PlanFilter
from billing.services import plans


@api()
def lambda_handler(req: Request) -> dict:
    return plans.page_of(req.scope, req.query_model(PlanFilter))
