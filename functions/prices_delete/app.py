"""DELETE /prices/{id}: archive a price and free its lookup key (200, Flexprice's SuccessResponse).

Flexprice's ``DeletePriceRequest`` body (``end_date``) is optional; a price ends when it is deleted.
"""

from billing.http import Request, api
from billing.schemas.prices import PriceDelete
from billing.services import prices


@api()
def lambda_handler(req: Request) -> dict:
    body = req.model(PriceDelete) if req.raw_body().strip() else PriceDelete()
    prices.archive(req.scope, req.param("id"), body.end_date)
    return {"message": "price deleted successfully"}
