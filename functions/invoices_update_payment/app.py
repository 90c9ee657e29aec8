"""PUT /invoices/{id}/payment: move the payment status (allowed transitions only)."""

from billing.http import Request, api
from billing.schemas.invoices import PaymentUpdate, invoice_out
from billing.services import invoices
from billing.timeutil import utcnow


@api(body=PaymentUpdate)
def lambda_handler(req: Request) -> dict:
    return invoice_out(invoices.update_payment(req.scope, req.param("id"), req.body, utcnow()))
