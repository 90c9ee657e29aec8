"""GET /invoices/{id}: one invoice with its line items."""

from billing.http import Request, api
from billing.schemas.invoices import invoice_out
from billing.services import invoices


@api()
def lambda_handler(req: Request) -> dict:
    return invoice_out(invoices.get(req.scope, req.param("id")))
