"""DELETE /coupons/{id}: archive a coupon (no new redemptions; existing discounts go on)."""

from billing.http import Request, api
from billing.services import coupons


@api()
def lambda_handler(req: Request) -> dict:
    coupons.archive(req.scope, req.param("id"))
    return {"message": "coupon deleted successfully"}
