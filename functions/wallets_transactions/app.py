"""GET /wallets/{id}/transactions: the wallet's append-only credits and debits, newest first."""

from billing.http import Request, api
from billing.schemas.wallets import TransactionFilter
from billing.services import wallets


@api()
def lambda_handler(req: Request) -> dict:
    return wallets.transactions(req.scope, req.param("id"), req.query_model(TransactionFilter))
