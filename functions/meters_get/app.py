"""GET /meters/{id}: one meter."""

from billing.http import Request, api
from billing.schemas.meters import meter_out
from billing.services import meters


@api()
def lambda_handler(req: Request) -> dict:
    return meter_out(meters.get(req.scope, req.param("id")))
