"""Money Stripe moved for our invoices: payments it collected, refunds and disputes, each applied once.

- **Stripe-collected payments** (``PK=<p>#stripe_payment``, ``SK=<pay id>``, listed per invoice on GSI1 with the
  payments of ``POST /payments``): one item per Stripe payment, its id derived from the Stripe reference (payment
  intent, charge, or the invoice for a customer-balance credit), written in the same transaction as the invoice's
  new ``amount_paid``. A second delivery of the same payment finds its item and changes nothing.
- **Refunds and disputes** are applied from the charge's current state at Stripe (``amount_refunded``, the dispute's
  status), not from the event's snapshot, so duplicated and reordered events converge: each payment item keeps the
  refunded and disputed amounts last applied (``refunded_amount``, ``disputed_amount``, guarded by ``ledger_rev``)
  and the invoice moves by the difference. ``amount_paid`` is always net: collected minus refunded minus funds a
  dispute withdrew (reinstated when the dispute is won).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing import wiring
from billing.domain.collection import invoice_payment_status
from billing.domain.money import round_minor
from billing.errors import VersionConflict
from billing.observability import logger, metrics
from billing.scope import Scope
from billing.store import invoices as invoice_keys
from billing.store.dynamo import ConditionFailed
from billing.timeutil import iso, utcnow

PROVIDER = "stripe"
WRITE_ATTEMPTS = 5
PAID = ("SUCCEEDED", "OVERPAID")


def payments_key(scope: Scope, invoice_id: str) -> str:
    return invoice_keys.invoice_payments_key(scope, invoice_id)


def stripe_payments_pk(scope: Scope) -> str:
    return f"{scope.prefix}#stripe_payment"


def payments_of(scope: Scope, invoice_id: str) -> list[dict[str, Any]]:
    return wiring.entities().query(payments_key(scope, invoice_id), index="GSI1")


def payment_id_for(stripe_ref: str, at: datetime) -> str:
    """``pay_`` + a ULID-shaped id derived from the Stripe reference it records (the same payment, the same id)."""
    digest = hashlib.sha256(stripe_ref.encode()).digest()
    value = (int(at.timestamp() * 1000) << 80) | int.from_bytes(digest[:10], "big")
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    chars = []
    for _ in range(26):
        chars.append(alphabet[value & 31])
        value >>= 5
    return "pay_" + "".join(reversed(chars))


@dataclass(frozen=True)
class Received:
    """One amount Stripe reports received for an invoice."""

    stripe_ref: str
    amount: Decimal
    method: str  # CARD or CREDITS (the Stripe customer's credit balance)
    payment_method_id: str | None = None


def invoice_put_op(scope: Scope, current: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The op writing ``record`` over the invoice as it was read (``current``): refused if it changed since."""
    repo = invoice_keys.invoices()
    return repo.table.put_op(
        repo.item(scope, record, invoice_keys.invoice_indexes(scope, record)),
        condition="attribute_exists(PK) AND version = :v",
        values={":v": int(current["version"])},
    )


def _with_money(
    invoice: dict[str, Any], paid_delta: Decimal, refunded_delta: Decimal, disputed_delta: Decimal, at: datetime
) -> dict[str, Any]:
    currency = invoice["currency"]
    due = Decimal(invoice["amount_due"])
    paid = round_minor(Decimal(invoice.get("amount_paid") or 0) + paid_delta, currency)
    refunded = round_minor(Decimal(invoice.get("refunded_amount") or 0) + refunded_delta, currency)
    disputed = round_minor(Decimal(invoice.get("disputed_amount") or 0) + disputed_delta, currency)
    status = invoice_payment_status(invoice["payment_status"], due, paid, refunded, disputed)
    record = {
        **invoice,
        "amount_paid": paid,
        "amount_remaining": round_minor(max(due - paid, Decimal(0)), currency),
        "refunded_amount": refunded,
        "disputed_amount": disputed,
        "payment_status": status,
        "updated_at": iso(at),
        "version": int(invoice["version"]) + 1,
    }
    if status in PAID:
        record["paid_at"] = invoice.get("paid_at") or iso(at)
    return record


def record_received(scope: Scope, invoice_id: str, received: list[Received], paid_at: datetime) -> str:
    """Apply what Stripe collected for an invoice, once: the payment items and the invoice's amount in one write."""
    entries = [r for r in received if r.amount > 0]
    if not entries:
        return "nothing_received"
    table = wiring.entities()
    for _ in range(WRITE_ATTEMPTS):
        invoice = invoice_keys.invoices().get(scope, invoice_id)
        if invoice["invoice_status"] != "FINALIZED":
            logger.warning(
                "Stripe collected money for an invoice that takes no payments",
                extra={"invoice_id": invoice_id, "invoice_status": invoice["invoice_status"]},
            )
            metrics.add_metric(name="PaymentOnClosedInvoice", unit="Count", value=1)
        ids = [payment_id_for(r.stripe_ref, paid_at) for r in entries]
        fresh = [
            (pid, r) for pid, r in zip(ids, entries, strict=True) if table.get(stripe_payments_pk(scope), pid) is None
        ]
        if not fresh:
            return "already_paid"
        now = iso(utcnow())
        ops = []
        for payment_id, entry in fresh:
            ops.append(
                table.put_op(
                    {
                        "PK": stripe_payments_pk(scope),
                        "SK": payment_id,
                        "GSI1PK": payments_key(scope, invoice_id),
                        "GSI1SK": payment_id,
                        "id": payment_id,
                        "tenant_id": scope.tenant_id,
                        "environment_id": scope.environment_id,
                        "destination_type": "INVOICE",
                        "destination_id": invoice_id,
                        "amount": entry.amount,
                        "currency": invoice["currency"],
                        "payment_method_type": entry.method,
                        "payment_method_id": entry.payment_method_id,
                        "payment_gateway": PROVIDER,
                        "gateway_payment_id": entry.stripe_ref,
                        "payment_status": "SUCCEEDED",
                        "succeeded_at": iso(paid_at),
                        "created_at": now,
                        "updated_at": now,
                    },
                    condition="attribute_not_exists(PK)",
                )
            )
        added = sum((entry.amount for _, entry in fresh), Decimal(0))
        if invoice["invoice_status"] == "FINALIZED":
            ops.append(invoice_put_op(scope, invoice, _with_money(invoice, added, Decimal(0), Decimal(0), paid_at)))
        try:
            table.transact(ops)
        except ConditionFailed:
            continue
        metrics.add_metric(name="PaymentRecorded", unit="Count", value=len(fresh))
        return "paid"
    raise VersionConflict(f"invoice {invoice_id} kept changing; retry")


@dataclass(frozen=True)
class ChargeState:
    """A Stripe charge as it stands now, in our currency's amounts."""

    refunded: Decimal
    disputed: Decimal  # funds a dispute has withdrawn and not reinstated


def apply_charge_state(scope: Scope, payment: dict[str, Any], state: ChargeState, at: datetime) -> str:
    """Move a payment (and its invoice) to the charge's current refunded and disputed amounts (idempotent)."""
    table = wiring.entities()
    pk = _payment_pk(scope, payment)
    for _ in range(WRITE_ATTEMPTS):
        current = table.get(pk, payment["id"])
        if current is None:
            return "payment_missing"
        currency = current["currency"]
        old_refunded = Decimal(current.get("refunded_amount") or 0)
        old_disputed = Decimal(current.get("disputed_amount") or 0)
        refunded = round_minor(min(state.refunded, Decimal(current["amount"])), currency)
        disputed = round_minor(min(state.disputed, Decimal(current["amount"]) - refunded), currency)
        if refunded == old_refunded and disputed == old_disputed:
            return "unchanged"
        rev = int(current.get("ledger_rev") or 0)
        status = current["payment_status"]
        if refunded >= Decimal(current["amount"]):
            status = "REFUNDED"
        elif refunded > 0:
            status = "PARTIALLY_REFUNDED"
        elif current["payment_status"] in ("REFUNDED", "PARTIALLY_REFUNDED"):
            status = "SUCCEEDED"  # a refund failed and the money came back
        ops = [
            table.update_op(
                pk,
                payment["id"],
                "SET refunded_amount = :r, disputed_amount = :d, payment_status = :s, ledger_rev = :next, "
                "updated_at = :t" + (", version = version + :one" if current.get("version") is not None else ""),
                condition="attribute_exists(PK) AND (attribute_not_exists(ledger_rev) OR ledger_rev = :rev)",
                values={
                    ":r": refunded,
                    ":d": disputed,
                    ":s": status,
                    ":next": rev + 1,
                    ":rev": rev,
                    ":t": iso(at),
                    **({":one": 1} if current.get("version") is not None else {}),
                },
            )
        ]
        invoice = invoice_keys.invoices().find(scope, current["destination_id"])
        d_refunded, d_disputed = refunded - old_refunded, disputed - old_disputed
        if invoice is not None:
            changed = _with_money(invoice, -(d_refunded + d_disputed), d_refunded, d_disputed, at)
            ops.append(invoice_put_op(scope, invoice, changed))
        try:
            table.transact(ops)
        except ConditionFailed:
            continue
        if d_refunded:
            metrics.add_metric(name="PaymentRefunded", unit="Count", value=1)
        if d_disputed:
            metrics.add_metric(name="PaymentDisputed", unit="Count", value=1)
        return "refunds_applied" if d_refunded else "dispute_applied"
    raise VersionConflict(f"payment {payment['id']} kept changing; retry")


def _payment_pk(scope: Scope, payment: dict[str, Any]) -> str:
    if payment.get("PK"):
        return str(payment["PK"])
    return stripe_payments_pk(scope) if payment.get("version") is None else f"{scope.prefix}#payment"


def when(unix: Any) -> datetime:
    return datetime.fromtimestamp(int(unix), UTC) if unix else utcnow()
