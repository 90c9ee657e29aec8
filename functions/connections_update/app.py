"""PUT /connections/{id}: rename, change sync settings, or rotate secrets."""

from billing.http import Request, api
from billing.schemas.connections import ConnectionUpdate, connection_out
from billing.services import connections


@api(body=ConnectionUpdate)
def lambda_handler(req: Request) -> dict:
    return connection_out(connections.update(req.scope, req.param("id"), req.body))
