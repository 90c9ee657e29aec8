"""POST /wallets/{id}/top-up: add credits (a free grant or a direct purchase), with expiry and priority."""

from billing.http import Request, api
from billing.schemas.wallets import TopUp, transaction_out, wallet_out
from billing.services import wallets
from billing.timeutil import utcnow


@api(body=TopUp)
def lambda_handler(req: Request) -> dict:
    done = wallets.top_up(req.scope, req.param("id"), req.body, utcnow())
    return {"wallet": wallet_out(done["wallet"]), "wallet_transaction": transaction_out(done["wallet_transaction"])}
