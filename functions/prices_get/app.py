"""GET /prices/{id}: one price."""

from billing.http import Request, api
from billing.schemas.prices import price_out
from billing.services import prices


@api()
def lambda_handler(req: Request) -> dict:
    return price_out(prices.get(req.scope, req.param("id")))
