"""GET /customers: list with query filters and pagination."""

from billing.http import Request, api
from billing.pagination import page
from billing.schemas.customers import CustomerFilter, customer_out
from billing.services import customers


@api()
def lambda_handler(req: Request) -> dict:
    criteria = req.query_model(CustomerFilter)
    return page(customers.search(req.scope, criteria), criteria.limit, criteria.offset, customer_out)
