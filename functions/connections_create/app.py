"""POST /connections: connect a provider (Stripe); secrets are encrypted and never returned (201)."""

from billing.http import Request, api
from billing.schemas.connections import ConnectionCreate, connection_out
from billing.services import connections


@api(status=201, body=ConnectionCreate)
def lambda_handler(req: Request) -> dict:
    return connection_out(connections.create(req.scope, req.body))
