"""PUT /taxes/associations/{id}: change a tax association's priority, auto-apply or metadata."""

from billing.http import Request, api
from billing.schemas.taxes import TaxAssociationUpdate, tax_association_out
from billing.services import taxes


@api(body=TaxAssociationUpdate)
def lambda_handler(req: Request) -> dict:
    return tax_association_out(taxes.update_association(req.scope, req.param("id"), req.body))
