"""The ledger audit: per invoice, our money against Stripe's, and every disagreement named.

For each invoice (finalized or voided) of an environment with an active Stripe connection:

- **Stripe's money**: every PaymentIntent that paid the invoice at Stripe (the Stripe invoice's, and those of our CARD
  and PAYMENT_LINK payments), net of its charge's refunds and of funds a dispute holds.
- **Our money**: the invoice's payments (ours and those recorded from Stripe) net of refunds and disputes, the credit a
  Stripe customer balance paid, and what a manual settlement declared beyond the recorded payments.

Findings (``problems``): ``over_collected`` (money taken minus money returned exceeds what is due),
``collected_after_void``, ``unrecorded_at_stripe`` (Stripe holds money our payments don't show),
``recorded_not_at_stripe`` (our Stripe-gateway payments show money Stripe doesn't hold), ``amount_paid_mismatch``
(the invoice's ``amount_paid`` is not the sum of its payments and settlements), ``status_mismatch`` (paid ↔
SUCCEEDED/OVERPAID, void ↔ VOIDED, uncollectible ↔ FAILED).

``run`` (scheduled) audits every environment with a Stripe connection within the function's time budget and publishes
the number of invoices with findings as ``LedgerMismatches`` (an alarm watches it).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from billing import stripe_edge
from billing.domain.money import from_minor_units, round_minor
from billing.observability import logger, metrics
from billing.scope import Scope
from billing.services import ledger, mappings, reconciliation, webhook_effects
from billing.store import invoices as invoice_keys

PROVIDER = "stripe"
# What our payment status may be for each final Stripe status. A paid Stripe invoice stays paid when its charge is
# refunded or disputed; ours then shows the refund, or is due again while a dispute holds the money.
_STRIPE_STATUS = {
    "paid": ("SUCCEEDED", "OVERPAID", "PARTIALLY_REFUNDED", "REFUNDED"),
    "void": ("VOIDED",),
    "uncollectible": ("FAILED",),
}


@dataclass
class Row:
    invoice_id: str
    invoice_number: str | None
    currency: str
    amount_due: Decimal
    amount_paid: Decimal
    status: str
    stripe_invoice_id: str | None = None
    stripe_status: str | None = None
    stripe_net: Decimal = Decimal(0)  # held by Stripe for this invoice, net of refunds and disputes
    recorded_stripe_net: Decimal = Decimal(0)  # what our Stripe-gateway payments say Stripe holds
    recorded_here: Decimal = Decimal(0)  # OFFLINE payments, balance credits, manual settlement
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, Decimal):
                out[key] = str(value)
        return out


def _net(amount: Decimal, item: dict[str, Any]) -> Decimal:
    return amount - Decimal(item.get("refunded_amount") or 0) - Decimal(item.get("disputed_amount") or 0)


def _stripe_net_of_intent(client: Any, intent_id: str, currency: str) -> Decimal:
    intent = client.v1.payment_intents.retrieve(intent_id).to_dict()
    if intent.get("status") != "succeeded":
        return Decimal(0)
    received = int(intent.get("amount_received") or intent.get("amount") or 0)
    refunded = 0
    withdrawn = 0
    charges = ((intent.get("charges") or {}).get("data")) or []
    charge_ids = [c.get("id") for c in charges if c.get("id")]
    if not charge_ids:
        listed = client.v1.charges.list({"payment_intent": intent_id, "limit": 100})
        charge_ids = [c.id for c in listed.data]
    for charge_id in charge_ids:
        charge = client.v1.charges.retrieve(str(charge_id)).to_dict()
        refunded += int(charge.get("amount_refunded") or 0)
        withdrawn += webhook_effects.withheld_by_disputes(client, charge)
    return from_minor_units(received - refunded - withdrawn, currency)


def audit_invoice(scope: Scope, edge: stripe_edge.Stripe, invoice: dict[str, Any]) -> Row:
    currency = str(invoice["currency"])
    row = Row(
        invoice_id=invoice["id"],
        invoice_number=invoice.get("invoice_number"),
        currency=currency,
        amount_due=Decimal(invoice["amount_due"]),
        amount_paid=Decimal(invoice.get("amount_paid") or 0),
        status="VOIDED" if invoice["invoice_status"] == "VOIDED" else str(invoice["payment_status"]),
    )
    intents: set[str] = set()
    recorded_total = Decimal(0)
    for item in ledger.payments_of(scope, invoice["id"]):
        if item.get("payment_status") not in ("SUCCEEDED", "REFUNDED", "PARTIALLY_REFUNDED"):
            continue
        net = _net(Decimal(item["amount"]), item)
        recorded_total += net
        ref = str(item.get("gateway_payment_id") or "")
        if item.get("payment_gateway") == PROVIDER and ref.startswith("pi_"):
            intents.add(ref)
            row.recorded_stripe_net += net
        else:
            row.recorded_here += net
    link = mappings.find(scope, "invoice", invoice["id"], PROVIDER)
    if link is not None:
        theirs = edge.client.v1.invoices.retrieve(link["provider_entity_id"]).to_dict()
        row.stripe_invoice_id = str(theirs["id"])
        row.stripe_status = str(theirs.get("status"))
        intent = theirs.get("payment_intent")
        intent_id = intent.get("id") if isinstance(intent, dict) else intent
        if intent_id and int(theirs.get("amount_paid") or 0) > 0:
            intents.add(str(intent_id))
        expected = _STRIPE_STATUS.get(row.stripe_status)
        disputed = Decimal(invoice.get("disputed_amount") or 0) > 0
        if expected is not None and row.status not in expected and not (disputed and row.status == "PENDING"):
            row.problems.append("status_mismatch")
        if row.stripe_status == "open" and row.status in ("SUCCEEDED", "OVERPAID", "VOIDED"):
            row.problems.append("status_mismatch")
    for intent_id in sorted(intents):
        row.stripe_net += _stripe_net_of_intent(edge.client, intent_id, currency)
    declared = max(row.amount_paid - recorded_total, Decimal(0))  # a manual settlement beyond recorded payments
    row.recorded_here += declared
    if row.stripe_net > row.recorded_stripe_net:
        row.problems.append("unrecorded_at_stripe")
    if row.stripe_net < row.recorded_stripe_net:
        row.problems.append("recorded_not_at_stripe")
    if round_minor(recorded_total + declared, currency) != round_minor(row.amount_paid, currency):
        row.problems.append("amount_paid_mismatch")
    money_in = max(row.stripe_net, row.recorded_stripe_net) + row.recorded_here
    if money_in > row.amount_due and row.status != "OVERPAID":
        row.problems.append("over_collected")
    if row.status == "VOIDED" and money_in > 0:
        row.problems.append("collected_after_void")
    return row


def audit_environment(scope: Scope, *, deadline: float | None = None) -> list[Row]:
    edge = stripe_edge.connect(scope)
    if edge is None:
        return []
    rows = []
    for invoice in invoice_keys.invoices().list(scope):
        if invoice.get("invoice_status") not in ("FINALIZED", "VOIDED"):
            continue
        if deadline is not None and time.monotonic() > deadline:
            break
        with stripe_edge.translated("audit the invoice"):
            rows.append(audit_invoice(scope, edge, invoice))
    return rows


def run(budget_seconds: float = 240) -> dict[str, int]:
    """Audit every environment with a Stripe connection; publish how many invoices disagree."""
    deadline = time.monotonic() + budget_seconds
    audited = mismatched = 0
    seen: set[tuple[str, str]] = set()
    for item in reconciliation.indexed_connections():
        key = (str(item["tenant_id"]), str(item["environment_id"]))
        if key in seen:
            continue
        seen.add(key)
        scope = Scope(*key)
        try:
            rows = audit_environment(scope, deadline=deadline)
        except Exception:
            logger.exception("ledger audit failed for an environment", extra={"tenant_id": key[0]})
            continue
        audited += len(rows)
        for row in rows:
            if row.problems:
                mismatched += 1
                logger.warning("ledger mismatch", extra=row.as_dict())
    metrics.add_metric(name="LedgerMismatches", unit="Count", value=mismatched)
    metrics.add_metric(name="LedgerInvoicesAudited", unit="Count", value=audited)
    return {"audited": audited, "mismatched": mismatched}
