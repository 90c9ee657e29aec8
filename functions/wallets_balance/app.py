"""GET /wallets/{id}/balance/real-time: the credits alive now and what they are worth."""

from billing.http import Request, api
from billing.schemas.wallets import wallet_out
from billing.services import wallets
from billing.timeutil import utcnow


@api()
def lambda_handler(req: Request) -> dict:
    found = wallets.balance(req.scope, req.param("id"), utcnow())
    return {**wallet_out(found), "balance_updated_at": found["balance_updated_at"]}
