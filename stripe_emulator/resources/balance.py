"""The account balance: one balance transaction per movement of funds (charge, refund, refund failure, dispute
withdrawal and reinstatement) and `GET /v1/balance` as their sum per currency."""

from __future__ import annotations

from stripe_emulator.resources.base import Obj, Params, check
from stripe_emulator.resources.catalog import Catalog
from stripe_emulator.store import Account, new_id

# (type, reporting_category) of each kind of movement, as Stripe labels them.
MOVEMENTS = {
    "charge": ("charge", "charge"),
    "refund": ("refund", "refund"),
    "refund_failure": ("refund_failure", "refund_failure"),
    "dispute": ("adjustment", "dispute"),
    "dispute_reversal": ("adjustment", "dispute_reversal"),
}


class Balance(Catalog):
    def _funds(
        self, acct: Account, kind: str, amount: int, currency: str, source: str, description: str | None = None
    ) -> Obj:
        """Record a movement of funds (positive in, negative out) and return its balance transaction."""
        type_, category = MOVEMENTS[kind]
        now = self.now()
        txn: Obj = {
            "id": new_id("txn_"),
            "object": "balance_transaction",
            "amount": amount,
            "available_on": now,
            "created": now,
            "currency": currency,
            "description": description,
            "exchange_rate": None,
            "fee": 0,
            "fee_details": [],
            "net": amount,
            "reporting_category": category,
            "source": source,
            "status": "available",
            "type": type_,
        }
        return acct.put(txn)

    def balance_retrieve(self, acct: Account, params: Params) -> Obj:
        check(params, set())
        totals: dict[str, int] = {}
        for txn in sorted(acct.all("balance_transaction"), key=lambda t: acct.order[t["id"]]):
            totals[txn["currency"]] = totals.get(txn["currency"], 0) + txn["net"]
        if not totals:
            totals["usd"] = 0
        available = [{"amount": v, "currency": c, "source_types": {"card": v}} for c, v in totals.items()]
        return {
            "object": "balance",
            "available": available,
            "livemode": acct.livemode,
            "pending": [{"amount": 0, "currency": c, "source_types": {"card": 0}} for c in totals],
        }
