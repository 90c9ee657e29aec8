"""POST /subscriptions/search: list with a filter body and pagination."""

from billing.http import Request, api
from billing.pagination import page
from billing.schemas.subscriptions import SubscriptionFilter, subscription_out
from billing.services import subscriptions


@api(body=SubscriptionFilter)
def lambda_handler(req: Request) -> dict:
    criteria: SubscriptionFilter = req.body
    return page(subscriptions.search(req.scope, criteria), criteria.limit, criteria.offset, subscription_out)
