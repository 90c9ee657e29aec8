"""POST /customers/search: list with a filter body and pagination."""

from billing.http import Request, api
from billing.pagination import page
from billing.schemas.customers import CustomerFilter, customer_out
from billing.services import customers


@api(body=CustomerFilter)
def lambda_handler(req: Request) -> dict:
    criteria: CustomerFilter = req.body
    return page(customers.search(req.scope, criteria), criteria.limit, criteria.offset, customer_out)
