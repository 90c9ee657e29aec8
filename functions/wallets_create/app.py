"""POST /wallets: create a prepaid wallet for a customer, optionally with initial credits (200, as Flexprice)."""

from billing.http import Request, api
from billing.schemas.wallets import WalletCreate, wallet_out
from billing.services import wallets
from billing.timeutil import utcnow


@api(body=WalletCreate)
def lambda_handler(req: Request) -> dict:
    return wallet_out(wallets.create(req.scope, req.body, utcnow()))
