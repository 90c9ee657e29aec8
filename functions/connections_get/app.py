"""GET /connections/{id}: one connection, without its secrets."""

from billing.http import Request, api
from billing.schemas.connections import connection_out
from billing.services import connections


@api()
def lambda_handler(req: Request) -> dict:
    return connection_out(connections.get(req.scope, req.param("id")))
