"""POST /wallets/search: wallets with a types.WalletFilter body and pagination."""

from billing.http import Request, api
from billing.schemas.wallets import WalletFilter
from billing.services import wallets
from billing.timeutil import utcnow


@api(body=WalletFilter)
def lambda_handler(req: Request) -> dict:
    return wallets.search(req.scope, req.body, utcnow())
