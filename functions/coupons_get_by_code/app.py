"""GET /coupons/code/{code}: the coupon holding a code."""

from billing.http import Request, api
from billing.schemas.coupons import coupon_out
from billing.services import coupons


@api()
def lambda_handler(req: Request) -> dict:
    return coupon_out(coupons.by_code(req.scope, req.param("code")))
