"""POST /taxes/rates: create a percentage or fixed tax rate (201)."""

from billing.http import Request, api
from billing.schemas.taxes import TaxRateCreate, tax_rate_out
from billing.services import taxes


@api(status=201, body=TaxRateCreate)
def lambda_handler(req: Request) -> dict:
    return tax_rate_out(taxes.create_rate(req.scope, req.body))
