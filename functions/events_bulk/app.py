"""POST /events/bulk: validate 1..1000 events (all or nothing), store and count them (202)."""

from billing.http import Request, api
from billing.schemas.events import BulkIngest
from billing.services import events
from billing.timeutil import utcnow


@api(status=202, body=BulkIngest)
def lambda_handler(req: Request) -> dict:
    events.ingest(req.scope, req.body.events, utcnow(), bulk=True)
    return {"message": "Events accepted for processing"}
