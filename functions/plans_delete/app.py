"""DELETE /plans/{id}: archive a plan and free its lookup key (200, Flexprice's SuccessResponse)."""

from billing.http import Request, api
from billing.services import plans


@api()
def lambda_handler(req: Request) -> dict:
    plans.archive(req.scope, req.param("id"))
    return {"message": "plan deleted successfully"}
