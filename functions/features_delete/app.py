"""DELETE /features/{id}: archive a feature and free its lookup key (200, SuccessResponse)."""

from billing.http import Request, api
from billing.services import features


@api()
def lambda_handler(req: Request) -> dict:
    features.archive(req.scope, req.param("id"))
    return {"message": "feature deleted successfully"}
