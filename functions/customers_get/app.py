"""GET /customers/{id}: one customer."""

from billing.http import Request, api
from billing.schemas.customers import customer_out
from billing.services import customers


@api()
def lambda_handler(req: Request) -> dict:
    return customer_out(customers.get(req.scope, req.param("id")))
