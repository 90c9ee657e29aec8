"""Invoices through the API: read, search, finalize, void, preview, payment status.

Payment status transitions (``API-CONTRACT.md``): PENDING → PENDING, SUCCEEDED, OVERPAID, FAILED;
FAILED → PENDING, FAILED, SUCCEEDED, OVERPAID; SUCCEEDED → SUCCEEDED, OVERPAID; OVERPAID → OVERPAID.
Finalize works on DRAFT, and is idempotent: on a FINALIZED invoice it answers the invoice as it is, so callers that
race (or retry after a timeout) all get what the winner got. Void works on DRAFT, FINALIZED or SKIPPED (not on an
invoice with money paid).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from billing import stripe_edge
from billing.domain.collection import STRIPE
from billing.domain.money import round_minor
from billing.errors import Conflict, InvalidOperation, VersionConflict
from billing.observability import logger, metrics
from billing.schemas.invoices import InvoiceFilter, InvoicePreview, PaymentUpdate
from billing.scope import Scope
from billing.services import collection, invoice_sync, invoicing, mappings
from billing.store import invoices as keys
from billing.store.dynamo import ConditionFailed
from billing.timeutil import iso

TRANSITIONS: dict[str, frozenset[str]] = {
    "PENDING": frozenset({"PENDING", "SUCCEEDED", "OVERPAID", "FAILED"}),
    "FAILED": frozenset({"PENDING", "FAILED", "SUCCEEDED", "OVERPAID"}),
    "SUCCEEDED": frozenset({"SUCCEEDED", "OVERPAID"}),
    "OVERPAID": frozenset({"OVERPAID"}),
    # After refunds (recorded from Stripe), what is due again may be paid again.
    "PARTIALLY_REFUNDED": frozenset({"PARTIALLY_REFUNDED", "SUCCEEDED", "OVERPAID"}),
    "REFUNDED": frozenset({"REFUNDED", "SUCCEEDED", "OVERPAID"}),
}


def get(scope: Scope, invoice_id: str) -> dict[str, Any]:
    return keys.invoices().get(scope, invoice_id)


def search(scope: Scope, criteria: InvoiceFilter) -> list[dict[str, Any]]:
    repo = keys.invoices()
    if criteria.subscription_id:
        records = repo.list_by_index("GSI2", keys.subscription_invoices_key(scope, criteria.subscription_id))
    elif criteria.customer_id:
        records = repo.list_by_index("GSI1", keys.customer_invoices_key(scope, criteria.customer_id))
    else:
        records = repo.list(scope)
    return criteria.arrange([r for r in records if criteria.keep(r)])


def finalize(scope: Scope, invoice_id: str, now: datetime) -> dict[str, Any]:
    invoice = get(scope, invoice_id)
    if invoice["invoice_status"] == "FINALIZED":
        return invoice
    if invoice["invoice_status"] != "DRAFT":
        raise InvalidOperation(
            f"invoice {invoice_id} is {invoice['invoice_status']}; only a DRAFT invoice can be finalized",
            {"invoice_status": invoice["invoice_status"]},
        )
    done = invoicing.finalize(scope, invoice, now, skip_zero=False)
    if done["invoice_status"] != "FINALIZED":
        raise InvalidOperation(f"invoice {invoice_id} was voided concurrently", {"id": invoice_id})
    if Decimal(done["total"]) > 0:
        queue_sync(scope, invoice_id)
    return done


def queue_sync(scope: Scope, invoice_id: str) -> None:
    """Queue a finalized invoice's Stripe sync at once (the sweeper queues whatever this misses)."""
    try:
        invoice_sync.request_invoice_sync(scope, invoice_id)
    except Exception:  # the outbox item stays pending: the sweeper queues it
        logger.exception("could not queue the invoice's Stripe sync", extra={"invoice_id": invoice_id})


def _write(scope: Scope, current: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    repo = keys.invoices()
    try:
        return repo.replace(scope, record, int(current["version"]), indexes=keys.invoice_indexes(scope, record))
    except ConditionFailed:
        raise VersionConflict(f"invoice {current['id']} was changed by another request; retry") from None


def _stripe_link(scope: Scope, invoice: dict[str, Any]) -> dict[str, Any] | None:
    """The invoice's Stripe invoice link, once the Stripe sync has finished building it.

    409 while Stripe is the collector but the sync has not finished (the Stripe invoice may be in the making).
    """
    if invoice.get("collector") != STRIPE:
        return None
    link = mappings.find(scope, "invoice", invoice["id"], "stripe")
    if link is None or (link.get("metadata") or {}).get("state") != "finalized":
        raise Conflict(
            f"invoice {invoice['id']} is being sent to Stripe right now; retry in a few seconds",
            {"invoice_id": invoice["id"], "collector": STRIPE},
        )
    return link


def _void_in_stripe(scope: Scope, invoice: dict[str, Any]) -> None:
    """Stop Stripe collecting a voided invoice first: void the open Stripe invoice, delete a draft, refuse when
    Stripe already has it paid."""
    link = _stripe_link(scope, invoice)
    if link is None:
        return
    stripe_id = str(link["provider_entity_id"])
    edge = stripe_edge.require(scope)
    with stripe_edge.translated("void the Stripe invoice"):
        current = edge.client.v1.invoices.retrieve(stripe_id)
        if current.status == "paid":
            raise Conflict(
                f"invoice {invoice['id']} was already paid at Stripe (Stripe invoice {stripe_id}) and cannot be "
                "voided; refund it instead",
                {"invoice_id": invoice["id"], "stripe_invoice_id": stripe_id, "stripe_status": "paid"},
            )
        if current.status == "draft":
            edge.client.v1.invoices.delete(stripe_id)
        elif current.status in ("open", "uncollectible"):
            edge.client.v1.invoices.void_invoice(
                stripe_id, options=stripe_edge.options(stripe_edge.key("invoice.void", invoice["id"]))
            )
    metrics.add_metric(name="StripeInvoiceVoided", unit="Count", value=1)


def void(scope: Scope, invoice_id: str, now: datetime, *, from_stripe: bool = False) -> dict[str, Any]:
    """Void an invoice. A Stripe invoice it was synced to is voided (or deleted) first, unless Stripe told us."""
    current = get(scope, invoice_id)
    status = current["invoice_status"]
    if status not in ("DRAFT", "FINALIZED", "SKIPPED"):
        raise InvalidOperation(f"invoice {invoice_id} is {status} and cannot be voided", {"invoice_status": status})
    if Decimal(current.get("amount_paid", 0)) > 0:
        raise InvalidOperation(f"invoice {invoice_id} has payments and cannot be voided")
    holder = collection.holder(current, now)
    if holder not in (None, STRIPE):
        raise Conflict(
            f"payment {holder} is collecting invoice {invoice_id}: wait for it to succeed, fail or expire",
            {"invoice_id": invoice_id, "payment_id": holder},
        )
    if not from_stripe:
        _void_in_stripe(scope, current)
    record = {
        **current,
        "invoice_status": "VOIDED",
        "payment_status": current["payment_status"],
        "voided_at": iso(now),
        "updated_at": iso(now),
        "version": int(current["version"]) + 1,
    }
    done = _write(scope, current, record)
    metrics.add_metric(name="InvoiceVoided", unit="Count", value=1)
    return done


def update_payment(
    scope: Scope, invoice_id: str, request: PaymentUpdate, now: datetime, *, from_stripe: bool = False
) -> dict[str, Any]:
    current = get(scope, invoice_id)
    if current["invoice_status"] != "FINALIZED":
        raise InvalidOperation(
            f"invoice {invoice_id} is {current['invoice_status']}; payment status changes need a FINALIZED invoice",
            {"invoice_status": current["invoice_status"]},
        )
    old, new = current["payment_status"], request.payment_status
    if new not in TRANSITIONS.get(old, frozenset()):
        raise InvalidOperation(f"payment status cannot change from {old} to {new}", {"from": old, "to": new})
    currency = current["currency"]
    due = Decimal(current["amount_due"])
    record = {**current, "payment_status": new, "updated_at": iso(now), "version": int(current["version"]) + 1}
    if new in ("SUCCEEDED", "OVERPAID"):
        paid = round_minor(request.amount if request.amount is not None else due, currency)
        if new == "OVERPAID" and paid <= due:
            raise InvalidOperation("OVERPAID needs an amount greater than amount_due", {"field": "amount"})
        if new == "SUCCEEDED" and paid < due:
            raise InvalidOperation("SUCCEEDED needs an amount of at least amount_due", {"field": "amount"})
        already = Decimal(current.get("amount_paid") or 0)
        if paid < already:
            raise InvalidOperation(
                f"amount {paid} is less than the {already} already paid: what was paid is never lowered here; "
                "record a refund instead",
                {"field": "amount", "amount_paid": str(already)},
            )
        if not from_stripe:
            holder = collection.holder(current, now)
            if holder == STRIPE and _stripe_link(scope, current) is not None:
                payments_mirror(scope, current)
            elif holder is not None and holder != STRIPE:
                raise Conflict(
                    f"payment {holder} is collecting invoice {invoice_id}: wait for it to succeed, fail or expire",
                    {"invoice_id": invoice_id, "payment_id": holder},
                )
        record["amount_paid"] = paid
        record["amount_remaining"] = round_minor(max(due - paid, Decimal(0)), currency)
        record["paid_at"] = current.get("paid_at") or iso(now)
    return _write(scope, current, record)


def preview(scope: Scope, request: InvoicePreview, now: datetime) -> dict[str, Any]:
    """The current period's invoice so far: computed from the counters, never stored."""
    sub = keys.subscriptions().get(scope, request.subscription_id)
    period = invoicing.current_period(sub)
    nxt = None if sub.get("last_period") else invoicing.schedule_of(sub).at_index(period.index + 1)
    until = request.period_end or now
    lines, _ = invoicing.compute_lines(scope, sub, period, usage_until=until, advance_period=nxt)
    if request.hide_zero_charges_line_items:
        lines = [line for line in lines if Decimal(line["amount"]) != 0]
    record = invoicing.invoice_record(scope, sub, "inv_preview", period, lines, [], reason=invoicing.CYCLE, now=now)
    record.pop("ledger_changes", None)
    record["id"] = None
    record["idempotency_key"] = None
    return record


def payments_mirror(scope: Scope, invoice: dict[str, Any]) -> None:
    """A manual settlement of an invoice Stripe collects: the Stripe invoice is marked paid out of band first."""
    collection.mirror_to_stripe(scope, invoice, Decimal(invoice.get("amount_remaining") or 0), "a manual settlement")
