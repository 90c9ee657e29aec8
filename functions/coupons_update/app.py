"""PUT /coupons/{id}: rename a coupon or change its metadata (its terms are fixed)."""

from billing.http import Request, api
from billing.schemas.coupons import CouponUpdate, coupon_out
from billing.services import coupons


@api(body=CouponUpdate)
def lambda_handler(req: Request) -> dict:
    return coupon_out(coupons.update(req.scope, req.param("id"), req.body))
