"""GET /meters: list with query filters and pagination (meters are created through features)."""

from billing.http import Request, api
from billing.pagination import page
from billing.schemas.meters import MeterFilter, meter_out
from billing.services import meters


@api()
def lambda_handler(req: Request) -> dict:
    criteria = req.query_model(MeterFilter)
    return page(meters.search(req.scope, criteria), criteria.limit, criteria.offset, meter_out)
