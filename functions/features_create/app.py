"""POST /features: create a feature, a metered one with an inline meter or a meter_id (201)."""

from billing.http import Request, api
from billing.schemas.features import FeatureCreate, feature_out
from billing.services import features


@api(status=201, body=FeatureCreate)
def lambda_handler(req: Request) -> dict:
    return feature_out(features.create(req.scope, req.body))
