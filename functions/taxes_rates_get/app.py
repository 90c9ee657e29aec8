"""GET /taxes/rates/{id}: one tax rate."""

from billing.http import Request, api
from billing.schemas.taxes import tax_rate_out
from billing.services import taxes


@api()
def lambda_handler(req: Request) -> dict:
    return tax_rate_out(taxes.get_rate(req.scope, req.param("id")))
