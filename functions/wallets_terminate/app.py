"""POST /wallets/{id}/terminate: close a wallet, debiting what is left."""

from billing.http import Request, api
from billing.schemas.wallets import wallet_out
from billing.services import wallets
from billing.timeutil import utcnow


@api()
def lambda_handler(req: Request) -> dict:
    return wallet_out(wallets.terminate(req.scope, req.param("id"), utcnow()))
