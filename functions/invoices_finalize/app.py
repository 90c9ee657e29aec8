"""POST /invoices/{id}/finalize: finalize a DRAFT invoice (numbered in the same write)."""

from billing.http import Request, api
from billing.schemas.invoices import invoice_out
from billing.services import invoices
from billing.timeutil import utcnow


@api()
def lambda_handler(req: Request) -> dict:
    return invoice_out(invoices.finalize(req.scope, req.param("id"), utcnow()))
