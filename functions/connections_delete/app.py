"""DELETE /connections/{id}: deactivate (archive) a connection; another may then be created (204)."""

from billing.http import Request, api, response
from billing.services import connections


@api()
def lambda_handler(req: Request) -> dict:
    connections.archive(req.scope, req.param("id"))
    return response(204)
