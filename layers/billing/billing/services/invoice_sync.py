"""Finalized invoices to Stripe: exactly one Stripe invoice per invoice, whose total equals ours to the minor unit.

The finalize transaction writes an outbox item (``store.invoices.sync_*``); the sync worker consumes it:

1. checks, in the documented order: a Stripe connection exists, it is active, its invoice outbound sync is on,
   the customer is synced (synced now when it is not) — a failed check marks the item ``skipped`` with the reason;
2. creates the Stripe invoice (``pending_invoice_items_behavior=exclude``, our collection method, metadata with
   our ids) and links it at once, so a retry continues with the same Stripe invoice;
3. adds one invoice item per line, in integer minor units with the currency's exponent (credits and adjustments as
   negative items), and refuses to go on unless their sum equals our total exactly;
4. finalizes with ``auto_advance`` (Stripe then collects a ``charge_automatically`` invoice) and sends a
   ``send_invoice`` one; stores ``hosted_invoice_url`` and ``invoice_pdf_url`` on our invoice; marks the item done.

Every POST carries an idempotency key derived from our ids, so a retried message never creates a second invoice or
item. Already synced → skipped, the existing mapping returned.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing import stripe_gateway, wiring
from billing.domain.money import to_minor_units
from billing.errors import NotFound, VersionConflict
from billing.observability import logger, metrics
from billing.scope import Scope
from billing.services import connections, mappings, stripe_sync
from billing.settings import get_settings
from billing.store import invoices as keys
from billing.store.dynamo import ConditionFailed
from billing.timeutil import iso, parse_iso, utcnow

INVOICE_SYNC = "invoice.sync"
PROVIDER = "stripe"
DAYS_UNTIL_DUE = 30


class SyncMismatch(Exception):
    """Stripe's invoice would not bill exactly what ours says: never finalized, the message is retried/DLQ'd."""


def _table() -> Any:
    return wiring.entities()


def message(scope: Scope, invoice_id: str) -> dict[str, str]:
    return {
        "kind": INVOICE_SYNC,
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "invoice_id": invoice_id,
    }


def request_invoice_sync(scope: Scope, invoice_id: str) -> bool:
    """Queue a finalized invoice's sync now (best effort: the sweeper queues whatever this misses)."""
    queue_url = get_settings().stripe_sync_queue_url
    if not queue_url:
        return False
    wiring.client("sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps(message(scope, invoice_id)))
    return True


def pending(before: datetime, limit: int = 500) -> list[dict[str, Any]]:
    """Outbox items still pending that were finalized before ``before`` (one Query per shard)."""
    out: list[dict[str, Any]] = []
    for shard in range(keys.SYNC_SHARDS):
        out.extend(
            _table().query(
                keys.sync_pending_pk(shard),
                index="GSI1",
                sk_between=("0", keys.key_time(before)),
                limit=limit,
            )
        )
    return out[:limit]


def sweep(now: datetime, min_age_seconds: int = 120) -> int:
    """Queue every pending outbox item older than ``min_age_seconds``. Returns how many were queued."""
    from datetime import timedelta

    queue_url = get_settings().stripe_sync_queue_url
    if not queue_url:
        return 0
    items = pending(now - timedelta(seconds=min_age_seconds))
    sqs = wiring.client("sqs")
    for start in range(0, len(items), 10):
        batch = items[start : start + 10]
        entries = [
            {
                "Id": str(n),
                "MessageBody": json.dumps(message(Scope(i["tenant_id"], i["environment_id"]), i["invoice_id"])),
            }
            for n, i in enumerate(batch)
        ]
        sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
    return len(items)


def _mark(scope: Scope, invoice_id: str, status: str, reason: str | None = None) -> None:
    """Close the outbox item (removing it from the pending index)."""
    with contextlib.suppress(ConditionFailed):
        _table().update(
            keys.sync_pk(scope),
            invoice_id,
            "SET #s = :s, reason = :r, updated_at = :t REMOVE GSI1PK, GSI1SK",
            condition="attribute_exists(PK)",
            names={"#s": "status"},
            values={":s": status, ":r": reason or status, ":t": iso(utcnow())},
        )


def _outbound(connection: dict[str, Any] | None) -> str | None:
    """Why this environment does not sync invoices, or None when it does."""
    if connection is None:
        return "no active Stripe connection"
    if not ((connection.get("sync_config") or {}).get("invoice") or {}).get("outbound"):
        return "invoice outbound sync is disabled on the Stripe connection"
    return None


def _epoch(text: str | None) -> int | None:
    return int(parse_iso(text).timestamp()) if text else None


def _save_links(scope: Scope, invoice: dict[str, Any], stripe_invoice: Any) -> None:
    repo = keys.invoices()
    for _attempt in range(5):
        current = repo.get(scope, invoice["id"])
        record = {
            **current,
            "stripe_invoice_id": stripe_invoice.id,
            "hosted_invoice_url": getattr(stripe_invoice, "hosted_invoice_url", None),
            "invoice_pdf_url": getattr(stripe_invoice, "invoice_pdf", None),
            "updated_at": iso(utcnow()),
            "version": int(current["version"]) + 1,
        }
        try:
            repo.replace(scope, record, int(current["version"]), indexes=keys.invoice_indexes(scope, record))
            return
        except VersionConflict:  # a concurrent status change (e.g. a webhook) won: read again
            continue


def sync_invoice(scope: Scope, invoice_id: str) -> dict[str, Any] | None:
    """Push one finalized invoice to Stripe. Returns its mapping, or None when the checks say not to sync."""
    invoice = keys.invoices().find(scope, invoice_id)
    if invoice is None:
        raise NotFound(f"invoice {invoice_id} was not found", {"entity": "invoice", "id": invoice_id})
    existing = mappings.find(scope, "invoice", invoice_id, PROVIDER)
    if existing is not None and existing.get("metadata", {}).get("state") == "finalized":
        _mark(scope, invoice_id, "done", "already synced")
        return existing
    if invoice.get("invoice_status") != "FINALIZED":
        _mark(scope, invoice_id, "skipped", f"invoice is {invoice.get('invoice_status')}")
        return None
    if Decimal(invoice["total"]) <= 0:
        _mark(scope, invoice_id, "skipped", "nothing to collect")
        return None
    connection = connections.active(scope, PROVIDER)
    reason = _outbound(connection)
    if reason is not None or connection is None:
        _mark(scope, invoice_id, "skipped", reason)
        logger.info("invoice not synced", extra={"invoice_id": invoice_id, "reason": reason})
        return None
    customer_link = stripe_sync.sync_customer(scope, invoice["customer_id"], force=True)
    if customer_link is None:
        raise NotFound("the customer could not be synced to Stripe", {"customer_id": invoice["customer_id"]})
    client = stripe_gateway.client_for(connections.stripe_credentials(scope, connection)["secret_key"])
    currency = invoice["currency"]
    lines = [line for line in invoice.get("line_items", []) if Decimal(line["amount"]) != 0]
    item_amounts = [to_minor_units(Decimal(line["amount"]), currency) for line in lines]
    total_minor = to_minor_units(Decimal(invoice["total"]), currency)
    if sum(item_amounts) != total_minor:
        raise SyncMismatch(f"invoice {invoice_id}: items add up to {sum(item_amounts)}, total is {total_minor}")

    ours = {
        "flexprice_invoice_id": invoice_id,
        "flexprice_customer_id": invoice["customer_id"],
        "flexprice_environment_id": scope.environment_id,
        "flexprice_invoice_number": invoice.get("invoice_number") or "",
    }
    if invoice.get("subscription_id"):
        ours["flexprice_subscription_id"] = invoice["subscription_id"]
    send = invoice.get("collection_method") == "send_invoice"
    params: dict[str, Any] = {
        "customer": customer_link["provider_entity_id"],
        "collection_method": "send_invoice" if send else "charge_automatically",
        "auto_advance": False,
        "pending_invoice_items_behavior": "exclude",
        "description": f"Invoice {invoice.get('invoice_number') or invoice_id}",
        "metadata": ours,
    }
    if send:
        params["days_until_due"] = DAYS_UNTIL_DUE
    key = stripe_gateway.idempotency_key
    stripe_invoice = client.v1.invoices.create(params, stripe_gateway.options(key("invoice.create", invoice_id)))
    mappings.link(scope, "invoice", invoice_id, PROVIDER, stripe_invoice.id, {"state": "draft"})

    for line, amount in zip(lines, item_amounts, strict=True):
        item: dict[str, Any] = {
            "customer": customer_link["provider_entity_id"],
            "invoice": stripe_invoice.id,
            "amount": amount,
            "currency": currency,
            "description": line.get("display_name") or line["id"],
            "metadata": {"flexprice_invoice_id": invoice_id, "flexprice_line_item_id": line["id"]},
        }
        start, end = _epoch(line.get("period_start")), _epoch(line.get("period_end"))
        if start is not None and end is not None and end > start:
            item["period"] = {"start": start, "end": end}
        client.v1.invoice_items.create(item, stripe_gateway.options(key("invoice_item", invoice_id, line["id"])))

    draft = client.v1.invoices.retrieve(stripe_invoice.id)
    if draft.status == "draft" and draft.total != total_minor:
        raise SyncMismatch(f"invoice {invoice_id}: Stripe's draft totals {draft.total}, ours is {total_minor}")
    if draft.status == "draft":
        done = client.v1.invoices.finalize_invoice(
            stripe_invoice.id, {"auto_advance": True}, stripe_gateway.options(key("invoice.finalize", invoice_id))
        )
    else:
        done = draft
    if send and done.status == "open":
        done = client.v1.invoices.send_invoice(
            stripe_invoice.id, options=stripe_gateway.options(key("invoice.send", invoice_id))
        )
    if done.total != total_minor:
        raise SyncMismatch(f"invoice {invoice_id}: Stripe finalized {done.total}, ours is {total_minor}")

    mapping = _finalize_mapping(scope, invoice_id, stripe_invoice.id)
    _save_links(scope, invoice, done)
    _mark(scope, invoice_id, "done")
    metrics.add_metric(name="StripeInvoiceSynced", unit="Count", value=1)
    metrics.add_metric(name="StripeSyncSucceeded", unit="Count", value=1)
    logger.info("invoice synced to Stripe", extra={"invoice_id": invoice_id, "stripe_invoice": stripe_invoice.id})
    return mapping


def _finalize_mapping(scope: Scope, invoice_id: str, stripe_invoice_id: str) -> dict[str, Any]:
    found = mappings.find(scope, "invoice", invoice_id, PROVIDER)
    if found is None:
        return mappings.link(scope, "invoice", invoice_id, PROVIDER, stripe_invoice_id, {"state": "finalized"})
    return mappings.update_metadata(scope, found, {"state": "finalized"})
