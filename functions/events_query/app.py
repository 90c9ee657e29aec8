"""POST /events/query: raw events by customer or event name, with filters and pagination."""

from billing.http import Request, api
from billing.schemas.events import EventsQuery
from billing.services import events
from billing.timeutil import utcnow


@api(body=EventsQuery)
def lambda_handler(req: Request) -> dict:
    return events.query(req.scope, req.body, utcnow())
