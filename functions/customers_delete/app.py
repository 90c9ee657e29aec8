"""DELETE /customers/{id}: archive a customer and free its external id (204)."""

from billing.http import Request, api, response
from billing.services import customers


@api()
def lambda_handler(req: Request) -> dict:
    customers.archive(req.scope, req.param("id"))
    return response(204)
