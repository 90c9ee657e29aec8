"""DELETE /taxes/rates/{id}: archive a tax rate and free its code (204)."""

from billing.http import Request, api, response
from billing.services import taxes


@api()
def lambda_handler(req: Request) -> dict:
    taxes.archive_rate(req.scope, req.param("id"))
    return response(204)
