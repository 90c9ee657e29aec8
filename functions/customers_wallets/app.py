"""GET /customers/{id}/wallets: a customer's wallets (a JSON array, as Flexprice)."""

from typing import Any

from billing.http import Request, api, response
from billing.schemas.wallets import wallet_out
from billing.services import wallets
from billing.store import catalog
from billing.timeutil import utcnow


@api()
def lambda_handler(req: Request) -> dict[str, Any]:
    customer = catalog.customers().get(req.scope, req.param("id"))
    return response(200, [wallet_out(w) for w in wallets.for_customer(req.scope, customer["id"], utcnow())])
