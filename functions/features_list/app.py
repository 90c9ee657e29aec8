"""GET /features: list with query filters and pagination, meters expanded."""

from billing.http import Request, api
from billing.schemas.features import FeatureFilter
from billing.services import features


@api()
def lambda_handler(req: Request) -> dict:
    return features.list_page(req.scope, req.query_model(FeatureFilter))
