"""GET /payments/{id}: one payment."""

from billing.http import Request, api
from billing.schemas.payments import payment_out
from billing.services import payments


@api()
def lambda_handler(req: Request) -> dict:
    return payment_out(payments.get(req.scope, req.param("id")))
