"""GET /features/{id}: one feature with its meter."""

from billing.http import Request, api
from billing.schemas.features import feature_out
from billing.services import features


@api()
def lambda_handler(req: Request) -> dict:
    return feature_out(features.get(req.scope, req.param("id")))
