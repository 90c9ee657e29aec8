"""POST /prices/search: list with a filter body and pagination."""

from billing.http import Request, api
from billing.pagination import page
from billing.schemas.prices import PriceFilter, price_out
from billing.services import prices


@api(body=PriceFilter)
def lambda_handler(req: Request) -> dict:
    criteria: PriceFilter = req.body
    return page(prices.search(req.scope, criteria), criteria.limit, criteria.offset, price_out)
