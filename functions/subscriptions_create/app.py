"""POST /subscriptions: create a subscription on a plan (201)."""

from billing.http import Request, api
from billing.schemas.subscriptions import SubscriptionCreate, subscription_out
from billing.services import subscriptions
from billing.timeutil import utcnow


@api(status=201, body=SubscriptionCreate)
def lambda_handler(req: Request) -> dict:
    return subscription_out(subscriptions.create(req.scope, req.body, utcnow()))
