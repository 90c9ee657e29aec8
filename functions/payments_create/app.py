"""POST /payments: record or collect a payment toward an invoice (201)."""

from billing.http import Request, api
from billing.schemas.payments import PaymentCreate, payment_out
from billing.services import payments


@api(status=201, body=PaymentCreate)
def lambda_handler(req: Request) -> dict:
    return payment_out(payments.create(req.scope, req.body))
