"""POST /features/search: list with a types.FeatureFilter body and pagination, meters expanded."""

from billing.http import Request, api
from billing.schemas.features import FeatureFilter
from billing.services import features


@api(body=FeatureFilter)
def lambda_handler(req: Request) -> dict:
    return features.list_page(req.scope, req.body)
