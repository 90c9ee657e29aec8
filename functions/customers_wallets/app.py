"""GET /customers/{id}/wallets: a customer's wallets (a JSON array, as Flexprice)."""

from typing import Any

from billing.http import Request, api, omit_absent, response
from billing.schemas.wallets import wallet_out
from billing.services import wallets
from billing.store import catalog
from billing.timeutil import utcnow


@api()
def lambda_handler(req: Request) -> dict[str, Any]:
    customer = catalog.customers().get(req.scope, req.param("id"))
    found = wallets.for_customer(req.scope, customer["id"], utcnow())
    return response(200, omit_absent([wallet_out(w) for w in found]))
