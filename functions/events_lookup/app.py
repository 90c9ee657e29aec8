"""GET /events/lookup?id=: one event and the meters it was counted for."""

from billing.http import Request, api
from billing.schemas.events import LookupQuery
from billing.services import events


@api()
def lambda_handler(req: Request) -> dict:
    return events.lookup(req.scope, req.query_model(LookupQuery).id)
