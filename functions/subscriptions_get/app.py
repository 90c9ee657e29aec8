"""GET /subscriptions/{id}: one subscription with its line items."""

from billing.http import Request, api
from billing.schemas.subscriptions import subscription_out
from billing.services import subscriptions


@api()
def lambda_handler(req: Request) -> dict:
    return subscription_out(subscriptions.get(req.scope, req.param("id")))
