"""DELETE /taxes/associations/{id}: end a tax association (a subscription's list changes with it)."""

from billing.http import Request, api
from billing.services import taxes
from billing.timeutil import utcnow


@api()
def lambda_handler(req: Request) -> dict:
    taxes.delete_association(req.scope, req.param("id"), utcnow())
    return {"message": "tax association deleted successfully"}
