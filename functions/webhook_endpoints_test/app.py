"""POST /webhooks/endpoints/{id}/test: send a signed ``webhook.test`` event to this endpoint alone (202)."""

from billing.http import Request, api
from billing.services import webhook_endpoints
from billing.timeutil import utcnow


@api(status=202)
def lambda_handler(req: Request) -> dict:
    return {"message_id": webhook_endpoints.send_test(req.scope, req.param("id"), utcnow())}
