"""PUT /wallets/{id}: rename a wallet or change its description or metadata."""

from billing.http import Request, api
from billing.schemas.wallets import WalletUpdate, wallet_out
from billing.services import wallets
from billing.timeutil import utcnow


@api(body=WalletUpdate)
def lambda_handler(req: Request) -> dict:
    return wallet_out(wallets.update(req.scope, req.param("id"), req.body, utcnow()))
