"""POST /coupons: create a fixed or percentage coupon (201)."""

from billing.http import Request, api
from billing.schemas.coupons import CouponCreate, coupon_out
from billing.services import coupons


@api(status=201, body=CouponCreate)
def lambda_handler(req: Request) -> dict:
    return coupon_out(coupons.create(req.scope, req.body))
