"""POST /plans/search: list with a filter body and pagination (``expand=prices`` adds active prices)."""

from billing.http import Request, api
from billing.schemas.plans import PlanFilter
from billing.services import plans


@api(body=PlanFilter)
def lambda_handler(req: Request) -> dict:
    return plans.page_of(req.scope, req.body)
