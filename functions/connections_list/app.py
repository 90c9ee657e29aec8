"""GET /connections: list with filters and pagination."""

from billing.http import Request, api
from billing.pagination import page
from billing.schemas.connections import ConnectionFilter, connection_out
from billing.services import connections


@api()
def lambda_handler(req: Request) -> dict:
    criteria = req.query_model(ConnectionFilter)
    return page(connections.search(req.scope, criteria), criteria.limit, criteria.offset, connection_out)
