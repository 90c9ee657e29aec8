"""GET /coupons/associations/{id}: one coupon association with its coupon."""

from billing.http import Request, api
from billing.schemas.coupons import association_out
from billing.services import coupons


@api()
def lambda_handler(req: Request) -> dict:
    return association_out(coupons.get_association(req.scope, req.param("id")))
