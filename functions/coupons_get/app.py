"""GET /coupons/{id}: one coupon with its redemption count."""

from billing.http import Request, api
from billing.schemas.coupons import coupon_out
from billing.services import coupons


@api()
def lambda_handler(req: Request) -> dict:
    return coupon_out(coupons.get(req.scope, req.param("id")))
