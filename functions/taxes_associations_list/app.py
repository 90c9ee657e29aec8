"""GET /taxes/associations: tax associations by entity or rate."""

from billing.http import Request, api
from billing.schemas.taxes import TaxAssociationFilter
from billing.services import taxes


@api()
def lambda_handler(req: Request) -> dict:
    return taxes.list_associations(req.scope, req.query_model(TaxAssociationFilter))
