"""POST /subscriptions/usage: usage and amount so far in the current period."""

from billing.http import Request, api
from billing.schemas.subscriptions import SubscriptionUsageRequest
from billing.services import subscriptions
from billing.timeutil import utcnow


@api(body=SubscriptionUsageRequest)
def lambda_handler(req: Request) -> dict:
    request: SubscriptionUsageRequest = req.body
    return subscriptions.usage(req.scope, request.subscription_id, request.start_time, request.end_time, utcnow())
