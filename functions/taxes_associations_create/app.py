"""POST /taxes/associations: apply a tax rate to the tenant, a customer or a subscription (200)."""

from billing.http import Request, api
from billing.schemas.taxes import TaxAssociationCreate, tax_association_out
from billing.services import taxes
from billing.timeutil import utcnow


@api(body=TaxAssociationCreate)
def lambda_handler(req: Request) -> dict:
    return tax_association_out(taxes.create_association(req.scope, req.body, utcnow()))
