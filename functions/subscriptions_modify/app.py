"""POST /subscriptions/{id}/modify/execute: attach a coupon to a subscription or a line item, or detach one."""

from billing.http import Request, api
from billing.schemas.subscriptions import SubscriptionModify, subscription_out
from billing.services import subscriptions
from billing.timeutil import utcnow


@api(body=SubscriptionModify)
def lambda_handler(req: Request) -> dict:
    return {"subscription": subscription_out(subscriptions.modify(req.scope, req.param("id"), req.body, utcnow()))}
