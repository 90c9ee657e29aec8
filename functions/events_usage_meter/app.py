"""POST /events/usage/meter: a meter's usage for a customer, per window, from the counters."""

from billing.http import Request, api
from billing.schemas.events import UsageByMeterQuery
from billing.services import usage
from billing.timeutil import utcnow


@api(body=UsageByMeterQuery)
def lambda_handler(req: Request) -> dict:
    return usage.by_meter(req.scope, req.body, utcnow())
