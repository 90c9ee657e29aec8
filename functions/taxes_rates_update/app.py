"""PUT /taxes/rates/{id}: rename, re-code, describe or deactivate a tax rate (its value is fixed)."""

from billing.http import Request, api
from billing.schemas.taxes import TaxRateUpdate, tax_rate_out
from billing.services import taxes


@api(body=TaxRateUpdate)
def lambda_handler(req: Request) -> dict:
    return tax_rate_out(taxes.update_rate(req.scope, req.param("id"), req.body))
