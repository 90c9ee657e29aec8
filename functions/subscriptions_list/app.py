"""GET /subscriptions: list with query filters and pagination."""

from billing.http import Request, api
from billing.pagination import page
from billing.schemas.subscriptions import SubscriptionFilter, subscription_out
from billing.services import subscriptions


@api()
def lambda_handler(req: Request) -> dict:
    criteria = req.query_model(SubscriptionFilter)
    return page(subscriptions.search(req.scope, criteria), criteria.limit, criteria.offset, subscription_out)
