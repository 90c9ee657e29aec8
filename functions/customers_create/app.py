"""POST /customers: create a customer (201)."""

from billing.http import Request, api
from billing.schemas.customers import CustomerCreate, customer_out
from billing.services import customers


@api(status=201, body=CustomerCreate)
def lambda_handler(req: Request) -> dict:
    return customer_out(customers.create(req.scope, req.body))
