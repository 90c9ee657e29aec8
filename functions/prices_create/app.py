"""POST /prices: add a price to a plan (201)."""

from billing.http import Request, api
from billing.schemas.prices import PriceCreate, price_out
from billing.services import prices


@api(status=201, body=PriceCreate)
def lambda_handler(req: Request) -> dict:
    return price_out(prices.create(req.scope, req.body))
