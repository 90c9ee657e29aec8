"""POST /events: store and count one event (202 once it is durably stored)."""

from billing.http import Request, api
from billing.schemas.events import IngestEvent
from billing.services import events
from billing.timeutil import utcnow


@api(status=202, body=IngestEvent)
def lambda_handler(req: Request) -> dict:
    accepted = events.ingest(req.scope, [req.body], utcnow(), bulk=False)
    return {"message": "Event accepted for processing", "event_id": accepted.event_ids[0]}
