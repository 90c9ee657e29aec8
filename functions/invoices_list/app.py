"""GET /invoices: list with query filters and pagination."""

from billing.http import Request, api
from billing.pagination import page
from billing.schemas.invoices import InvoiceFilter, invoice_out
from billing.services import invoices


@api()
def lambda_handler(req: Request) -> dict:
    criteria = req.query_model(InvoiceFilter)
    return page(invoices.search(req.scope, criteria), criteria.limit, criteria.offset, invoice_out)
