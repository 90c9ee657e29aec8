"""GET /payments: list with query filters and pagination."""

from billing.http import Request, api
from billing.pagination import page
from billing.schemas.payments import PaymentFilter, payment_out
from billing.services import payments


@api()
def lambda_handler(req: Request) -> dict:
    criteria = req.query_model(PaymentFilter)
    return page(payments.search(req.scope, criteria), criteria.limit, criteria.offset, payment_out)
