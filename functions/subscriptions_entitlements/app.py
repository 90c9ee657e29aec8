"""GET /subscriptions/{id}/entitlements: the features the subscription's plan grants, combined per feature."""

from billing.http import Request, api
from billing.schemas.entitlements import FeatureIds, subscription_entitlements_out
from billing.services import entitlements


@api()
def lambda_handler(req: Request) -> dict:
    wanted = req.query_model(FeatureIds).feature_ids
    return subscription_entitlements_out(entitlements.subscription_view(req.scope, req.param("id"), wanted))
