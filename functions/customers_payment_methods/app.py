"""GET /customers/{id}/payment-methods and GET /payments/customers/{customer_id}/methods: saved cards."""

from billing.http import Request, api
from billing.services import payment_methods


@api()
def lambda_handler(req: Request) -> dict:
    customer_id = req.path_params.get("customer_id") or req.param("id")
    return payment_methods.saved_methods(req.scope, customer_id)
