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

from billing.domain.money import round_minor
from billing.errors import InvalidOperation, VersionConflict
from billing.observability import metrics
from billing.schemas.invoices import InvoiceFilter, InvoicePreview, PaymentUpdate
from billing.scope import Scope
from billing.services import invoicing
from billing.store import invoices as keys
from billing.store.dynamo import ConditionFailed
from billing.timeutil import iso

TRANSITIONS: dict[str, frozenset[str]] = {
    "PENDING": frozenset({"PENDING", "SUCCEEDED", "OVERPAID", "FAILED"}),
    "FAILED": frozenset({"PENDING", "FAILED", "SUCCEEDED", "OVERPAID"}),
    "SUCCEEDED": frozenset({"SUCCEEDED", "OVERPAID"}),
    "OVERPAID": frozenset({"OVERPAID"}),
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
    return done


def _write(scope: Scope, current: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    repo = keys.invoices()
    try:
        return repo.replace(scope, record, int(current["version"]), indexes=keys.invoice_indexes(scope, record))
    except ConditionFailed:
        raise VersionConflict(f"invoice {current['id']} was changed by another request; retry") from None


def void(scope: Scope, invoice_id: str, now: datetime) -> dict[str, Any]:
    current = get(scope, invoice_id)
    status = current["invoice_status"]
    if status not in ("DRAFT", "FINALIZED", "SKIPPED"):
        raise InvalidOperation(f"invoice {invoice_id} is {status} and cannot be voided", {"invoice_status": status})
    if Decimal(current.get("amount_paid", 0)) > 0:
        raise InvalidOperation(f"invoice {invoice_id} has payments and cannot be voided")
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


def update_payment(scope: Scope, invoice_id: str, request: PaymentUpdate, now: datetime) -> dict[str, Any]:
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
