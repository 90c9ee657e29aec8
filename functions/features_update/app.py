"""PUT /features/{id}: change name, description, metadata or units (type and meter are fixed)."""

from billing.http import Request, api
from billing.schemas.features import FeatureUpdate, feature_out
from billing.services import features


@api(body=FeatureUpdate)
def lambda_handler(req: Request) -> dict:
    return feature_out(features.update(req.scope, req.param("id"), req.body))
