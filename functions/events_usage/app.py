"""POST /events/usage: usage by event name and aggregation, from the counters of a meter that keeps it."""

from billing.http import Request, api
from billing.schemas.events import UsageQuery
from billing.services import usage
from billing.timeutil import utcnow


@api(body=UsageQuery)
def lambda_handler(req: Request) -> dict:
    return usage.by_event_name(req.scope, req.body, utcnow())
