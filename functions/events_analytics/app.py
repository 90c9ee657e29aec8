"""POST /events/analytics: a customer's usage per metered feature over a period, from the counters."""

from billing.http import Request, api
from billing.schemas.events import UsageAnalyticsQuery
from billing.services import analytics
from billing.timeutil import utcnow


@api(body=UsageAnalyticsQuery)
def lambda_handler(req: Request) -> dict:
    return analytics.analytics(req.scope, req.body, utcnow())
