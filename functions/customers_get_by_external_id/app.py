"""GET /customers/external/{external_id}: one customer by the caller's own id."""

from billing.http import Request, api
from billing.schemas.customers import customer_out
from billing.services import customers


@api()
def lambda_handler(req: Request) -> dict:
    return customer_out(customers.get_by_external_id(req.scope, req.param("external_id")))
