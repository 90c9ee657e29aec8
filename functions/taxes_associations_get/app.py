"""GET /taxes/associations/{id}: one tax association with its rate."""

from billing.http import Request, api
from billing.schemas.taxes import tax_association_out
from billing.services import taxes


@api()
def lambda_handler(req: Request) -> dict:
    return tax_association_out(taxes.get_association(req.scope, req.param("id")))
