"""The invoice's collector claim, stored on the invoice item (rules in ``billing.domain.collection``).

Attributes: ``collector`` (``stripe`` or ``payment:<pay id>``) and, for a payment, ``collector_expires_at``
(ISO time; the lease after which another collector may take over). Every claim and release bumps the invoice's
``version``, so a writer that read the invoice before the claim fails its version check and reads it again: a claim
is never lost under a concurrent whole-item write.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from billing import stripe_edge
from billing.domain.collection import STRIPE, held_by_payment
from billing.errors import Conflict
from billing.observability import metrics
from billing.scope import Scope
from billing.services import mappings
from billing.store import invoices as keys
from billing.store.dynamo import ConditionFailed
from billing.store.entities import entity_pk, strip_keys

CARD_LEASE = timedelta(hours=1)
LINK_LEASE_MARGIN = timedelta(minutes=10)
_FREE = "(attribute_not_exists(collector) OR collector = :c OR collector_expires_at < :now)"


def _pk(scope: Scope) -> str:
    return entity_pk(scope, "invoice")


def claim_op(scope: Scope, invoice: dict[str, Any], collector: str, now: datetime, until: datetime) -> dict[str, Any]:
    """An op (for a transaction) claiming a FINALIZED invoice read at its current version for a payment."""
    return keys.invoices().table.update_op(
        _pk(scope),
        invoice["id"],
        "SET collector = :c, collector_expires_at = :until, version = version + :one",
        condition=f"invoice_status = :fin AND version = :v AND {_FREE}",
        values={
            ":c": collector,
            ":until": keys.key_time(until),
            ":now": keys.key_time(now),
            ":fin": "FINALIZED",
            ":v": int(invoice["version"]),
            ":one": 1,
        },
    )


def released(record: dict[str, Any], collector: str) -> dict[str, Any]:
    """``record`` without the claim when ``collector`` holds it (for whole-item writes)."""
    if record.get("collector") != collector:
        return record
    return {k: v for k, v in record.items() if k not in ("collector", "collector_expires_at")}


def claim_for_stripe(scope: Scope, invoice_id: str, now: datetime) -> tuple[bool, dict[str, Any] | None]:
    """Make Stripe the invoice's collector. (claimed, the invoice as now stored).

    Not claimed when the invoice is no longer FINALIZED or a payment of ours holds a live lease on it.
    """
    table = keys.invoices().table
    try:
        item = table.update(
            _pk(scope),
            invoice_id,
            "SET collector = :c, version = version + :one REMOVE collector_expires_at",
            condition=f"invoice_status = :fin AND {_FREE}",
            values={":c": STRIPE, ":now": keys.key_time(now), ":fin": "FINALIZED", ":one": 1},
        )
    except ConditionFailed:
        return False, keys.invoices().find(scope, invoice_id)
    return True, strip_keys(item)


def release_stripe(scope: Scope, invoice_id: str) -> None:
    """Stripe no longer collects the invoice (nothing was sent to Stripe): anyone may pay it here."""
    try:
        keys.invoices().table.update(
            _pk(scope),
            invoice_id,
            "REMOVE collector, collector_expires_at SET version = version + :one",
            condition="collector = :c",
            values={":c": STRIPE, ":one": 1},
        )
    except ConditionFailed:
        return


def holder(invoice: dict[str, Any], now: datetime) -> str | None:
    """Who holds the invoice now: ``stripe``, a payment id, or None (a lapsed payment lease holds nothing)."""
    collector = invoice.get("collector")
    if not collector:
        return None
    if collector == STRIPE:
        return STRIPE
    expires = invoice.get("collector_expires_at")
    if expires and str(expires) < keys.key_time(now):
        return None
    return held_by_payment(collector)


def mirror_to_stripe(scope: Scope, invoice: dict[str, Any], amount: Decimal, what: str) -> None:
    """Before recording money paid outside Stripe on an invoice Stripe collects, mark the Stripe invoice paid out of
    band, so Stripe stops collecting. Refused (409) when Stripe has already collected it, or while the sync is still
    building the Stripe invoice, or for less than the full amount remaining (Stripe cannot settle part of an
    invoice out of band)."""
    invoice_id = invoice["id"]
    remaining = Decimal(invoice.get("amount_remaining") or 0)
    if amount != remaining:
        raise Conflict(
            f"invoice {invoice_id} is collected by Stripe: {what} must settle it in full "
            f"({remaining} {invoice['currency']})",
            {"invoice_id": invoice_id, "collector": STRIPE, "amount_remaining": str(remaining)},
        )
    link = mappings.find(scope, "invoice", invoice_id, "stripe")
    if link is None or (link.get("metadata") or {}).get("state") != "finalized":
        raise Conflict(
            f"invoice {invoice_id} is being sent to Stripe right now; retry in a few seconds",
            {"invoice_id": invoice_id, "collector": STRIPE, "retry_after": 5},
        )
    stripe_invoice = str(link["provider_entity_id"])
    edge = stripe_edge.require(scope)
    with stripe_edge.translated("mark the Stripe invoice paid out of band"):
        current = edge.client.v1.invoices.retrieve(stripe_invoice)
        if current.status == "paid" and not getattr(current, "paid_out_of_band", False):
            raise Conflict(
                f"Stripe invoice {stripe_invoice} was already paid at Stripe; its webhook records that payment here",
                {"invoice_id": invoice_id, "stripe_invoice_id": stripe_invoice, "stripe_status": current.status},
            )
        if current.status in ("void", "draft"):
            raise Conflict(
                f"Stripe invoice {stripe_invoice} is {current.status}; nothing can be settled on it",
                {"invoice_id": invoice_id, "stripe_invoice_id": stripe_invoice, "stripe_status": current.status},
            )
        # open or uncollectible → paid out of band; already paid out of band → the same key replays that answer.
        edge.client.v1.invoices.pay(
            stripe_invoice,
            {"paid_out_of_band": True},
            stripe_edge.options(stripe_edge.key("invoice.paid_out_of_band", invoice_id)),
        )
    metrics.add_metric(name="StripeInvoicePaidOutOfBand", unit="Count", value=1)
