"""PUT /customers?id=|external_customer_id= and PUT /customers/{id}: update a customer."""

from billing.http import Request, api
from billing.schemas.customers import CustomerUpdate, customer_out
from billing.services import customers


@api(body=CustomerUpdate)
def lambda_handler(req: Request) -> dict:
    current = customers.resolve(
        req.scope,
        req.path_params.get("id") or req.query.get("id"),
        req.query.get("external_customer_id"),
    )
    return customer_out(customers.update(req.scope, current, req.body))
