"""POST /subscriptions/{id}/cancel: cancel now or at the end of the current period."""

from billing.http import Request, api
from billing.schemas.subscriptions import SubscriptionCancel, cancel_out
from billing.services import subscriptions
from billing.timeutil import utcnow


@api(body=SubscriptionCancel)
def lambda_handler(req: Request) -> dict:
    request: SubscriptionCancel = req.body
    record = subscriptions.cancel(req.scope, req.param("id"), request, utcnow())
    return cancel_out(record, request.cancellation_type, request.reason)
