"""POST /invoices/preview: the current period's invoice so far (computed, not stored)."""

from billing.http import Request, api
from billing.schemas.invoices import InvoicePreview, invoice_out
from billing.services import invoices
from billing.timeutil import utcnow


@api(body=InvoicePreview)
def lambda_handler(req: Request) -> dict:
    return invoice_out(invoices.preview(req.scope, req.body, utcnow()))
