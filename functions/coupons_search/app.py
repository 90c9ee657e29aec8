"""POST /coupons/search: list with a types.CouponFilter body and pagination."""

from billing.http import Request, api
from billing.schemas.coupons import CouponFilter
from billing.services import coupons


@api(body=CouponFilter)
def lambda_handler(req: Request) -> dict:
    return coupons.list_page(req.scope, req.body)
