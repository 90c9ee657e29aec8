"""POST /webhooks/endpoints/{id}/replay: deliver one message, or a time range of messages, again (202)."""

from billing.http import Request, api
from billing.schemas.webhook_endpoints import Replay
from billing.services import webhook_endpoints
from billing.timeutil import utcnow


@api(status=202, body=Replay)
def lambda_handler(req: Request) -> dict:
    ids = webhook_endpoints.replay(req.scope, req.param("id"), req.body, utcnow())
    return {"replayed": len(ids), "message_ids": ids}
