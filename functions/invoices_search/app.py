"""POST /invoices/search: list with a filter body and pagination."""

from billing.http import Request, api
from billing.pagination import page
from billing.schemas.invoices import InvoiceFilter, invoice_out
from billing.services import invoices


@api(body=InvoiceFilter)
def lambda_handler(req: Request) -> dict:
    criteria: InvoiceFilter = req.body
    return page(invoices.search(req.scope, criteria), criteria.limit, criteria.offset, invoice_out)
