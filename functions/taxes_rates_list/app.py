"""GET /taxes/rates: list tax rates with query filters and pagination."""

from billing.http import Request, api
from billing.schemas.taxes import TaxRateFilter
from billing.services import taxes


@api()
def lambda_handler(req: Request) -> dict:
    return taxes.list_rates(req.scope, req.query_model(TaxRateFilter))
