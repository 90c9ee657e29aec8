"""GET /customers/usage: each entitled feature's usage so far in its window, against its limit."""

from billing.http import Request, api
from billing.schemas.entitlements import UsageQuery, usage_summary_out
from billing.services import entitlements
from billing.timeutil import utcnow


@api()
def lambda_handler(req: Request) -> dict:
    return usage_summary_out(entitlements.usage_summary(req.scope, req.query_model(UsageQuery), utcnow()))
