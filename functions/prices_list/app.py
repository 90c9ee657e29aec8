"""GET /prices: list with query filters (plan_id, entity_ids, price_ids, status, ...) and pagination."""

from billing.http import Request, api
from billing.pagination import page
from billing.schemas.prices import PriceFilter, price_out
from billing.services import prices


@api()
def lambda_handler(req: Request) -> dict:
    criteria = req.query_model(PriceFilter)
    return page(prices.search(req.scope, criteria), criteria.limit, criteria.offset, price_out)
