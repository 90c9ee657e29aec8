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

from billing import stripe_edge, wiring
from billing.domain import collection as collection_rules
from billing.domain.money import from_minor_units, round_minor, to_minor_units
from billing.errors import NotFound, VersionConflict
from billing.observability import logger, metrics
from billing.scope import Scope
from billing.services import collection, mappings, stripe_sync
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


def _skip(scope: Scope, invoice_id: str, reason: str, *, release: bool = False) -> None:
    if release:
        collection.release_stripe(scope, invoice_id)
    _mark(scope, invoice_id, "skipped", reason)
    logger.info("invoice not synced", extra={"invoice_id": invoice_id, "reason": reason})


def _our_metadata(scope: Scope, invoice: dict[str, Any]) -> dict[str, str]:
    ours = {
        "flexprice_invoice_id": invoice["id"],
        "flexprice_customer_id": invoice["customer_id"],
        "flexprice_environment_id": scope.environment_id,
        "flexprice_invoice_number": invoice.get("invoice_number") or "",
    }
    if invoice.get("subscription_id"):
        ours["flexprice_subscription_id"] = invoice["subscription_id"]
    return ours


def _metadata(obj: Any) -> dict[str, Any]:
    found = getattr(obj, "metadata", None)
    if found is None:
        return {}
    return dict(found.to_dict() if hasattr(found, "to_dict") else found)


def _find_stripe_invoice(
    edge: stripe_edge.Stripe, link: dict[str, Any] | None, invoice: dict[str, Any], customer: str
) -> Any:
    """The Stripe invoice made for ours: by the stored link, else by our id among the customer's drafts (a create
    whose link was never stored, resumed after Stripe forgot its idempotency key)."""
    if link is not None:
        return edge.client.v1.invoices.retrieve(link["provider_entity_id"])
    listed = edge.client.v1.invoices.list({"customer": customer, "status": "draft", "limit": 100})
    for candidate in listed.auto_paging_iter():
        if _metadata(candidate).get("flexprice_invoice_id") == invoice["id"]:
            return candidate
    return None


def _items(
    invoice: dict[str, Any], currency: str, paid_before: Decimal, charge: Any
) -> list[tuple[str, dict[str, Any]]]:
    """(key, invoice item parameters) for every item the Stripe invoice must hold: our non-zero lines, one line for
    what was already paid here, one for the three-decimal rounding adjustment."""
    out: list[tuple[str, dict[str, Any]]] = []
    for line in invoice.get("line_items", []):
        amount = Decimal(line["amount"])
        if amount == 0:
            continue
        item: dict[str, Any] = {
            "amount": to_minor_units(amount, currency),
            "description": line.get("display_name") or line["id"],
            "metadata": {"flexprice_invoice_id": invoice["id"], "flexprice_line_item_id": line["id"]},
        }
        start, end = _epoch(line.get("period_start")), _epoch(line.get("period_end"))
        if start is not None and end is not None and end > start:
            item["period"] = {"start": start, "end": end}
        out.append((line["id"], item))
    if paid_before > 0:
        out.append(
            (
                "paid_before_sync",
                {
                    "amount": -to_minor_units(paid_before, currency),
                    "description": "Payments already received",
                    "metadata": {"flexprice_invoice_id": invoice["id"], "flexprice_line_item_id": "paid_before_sync"},
                },
            )
        )
    if charge.adjustment > 0:
        out.append(
            (
                "rounding",
                {
                    "amount": -to_minor_units(charge.adjustment, currency),
                    "description": f"Rounding: {currency.upper()} card charges end in 0",
                    "metadata": {"flexprice_invoice_id": invoice["id"], "flexprice_line_item_id": "rounding"},
                },
            )
        )
    return out


def _record_adjustment(scope: Scope, invoice: dict[str, Any], adjustment: Decimal) -> dict[str, Any]:
    """Write the three-decimal rounding off our amount due (once), so our amount due equals Stripe's total."""
    if adjustment <= 0 or invoice.get("rounding_adjustment"):
        return invoice
    currency = invoice["currency"]
    due = round_minor(Decimal(invoice["amount_due"]) - adjustment, currency)
    record = {
        **invoice,
        "amount_due": due,
        "amount_remaining": round_minor(max(due - Decimal(invoice.get("amount_paid") or 0), Decimal(0)), currency),
        "rounding_adjustment": adjustment,
        "updated_at": iso(utcnow()),
        "version": int(invoice["version"]) + 1,
    }
    repo = keys.invoices()
    return repo.replace(scope, record, int(invoice["version"]), indexes=keys.invoice_indexes(scope, record))


def sync_invoice(scope: Scope, invoice_id: str) -> dict[str, Any] | None:
    """Push one finalized invoice to Stripe. Returns its mapping, or None when the checks say not to sync.

    Resumable: every step first looks for what an earlier attempt made (the link, our ids in Stripe metadata,
    the Stripe invoice's status), so a sync resumed a day later, after Stripe forgot its idempotency keys, creates
    nothing twice.
    """
    invoice = keys.invoices().find(scope, invoice_id)
    if invoice is None:
        raise NotFound(f"invoice {invoice_id} was not found", {"entity": "invoice", "id": invoice_id})
    existing = mappings.find(scope, "invoice", invoice_id, PROVIDER)
    if existing is not None and existing.get("metadata", {}).get("state") == "finalized":
        _mark(scope, invoice_id, "done", "already synced")
        return existing
    if invoice.get("invoice_status") != "FINALIZED":
        _skip(scope, invoice_id, f"invoice is {invoice.get('invoice_status')}")
        return None
    if Decimal(invoice["total"]) <= 0:
        _skip(scope, invoice_id, "nothing to collect")
        return None
    edge = stripe_edge.connect(scope)
    reason = _outbound(edge.connection if edge else None)
    if reason is not None or edge is None:
        _skip(scope, invoice_id, reason or "no active Stripe connection")
        return None

    claimed, current = collection.claim_for_stripe(scope, invoice_id, utcnow())
    if not claimed or current is None:
        if current is not None and current.get("invoice_status") == "FINALIZED":
            # A payment of ours is collecting it right now: the outbox item stays pending, the sweeper retries.
            logger.info("invoice sync waits for a payment in flight", extra={"invoice_id": invoice_id})
            metrics.add_metric(name="StripeSyncDeferred", unit="Count", value=1)
            return None
        _skip(scope, invoice_id, f"invoice is {(current or {}).get('invoice_status')}")
        return None
    invoice = current
    currency = str(invoice["currency"]).lower()
    paid_before = round_minor(Decimal(invoice.get("amount_paid") or 0), currency)
    if existing is None:
        charge = collection_rules.stripe_charge(Decimal(invoice["amount_due"]), paid_before, currency)
        if charge.remainder <= 0:
            _mark(scope, invoice_id, "done", "paid before it reached Stripe")
            collection.release_stripe(scope, invoice_id)
            return None
        if charge.below_minimum:
            _skip(
                scope,
                invoice_id,
                f"{from_minor_units(charge.collect_minor, currency)} {currency.upper()} is below Stripe's minimum "
                "charge amount: the invoice stays payable here (OFFLINE or manual settlement)",
                release=True,
            )
            metrics.add_metric(name="StripeSyncBelowMinimum", unit="Count", value=1)
            return None
        invoice = _record_adjustment(scope, invoice, charge.adjustment)
    else:
        # Resuming: the Stripe invoice was built from the figures stored when it was created.
        paid_before = Decimal(str((existing.get("metadata") or {}).get("paid_before") or "0"))
        charge = collection_rules.stripe_charge(Decimal(invoice["amount_due"]), paid_before, currency)
    expected = charge.collect_minor

    with stripe_edge.translated("sync the invoice"):
        customer = stripe_sync.stripe_customer(scope, invoice["customer_id"])
        send = invoice.get("collection_method") == "send_invoice"
        # A concurrent sync may have linked one since ``existing`` was read: read the link again only then.
        link = existing or mappings.find(scope, "invoice", invoice_id, PROVIDER)
        stripe_invoice = _find_stripe_invoice(edge, link, invoice, customer)
        if stripe_invoice is None:
            balance = int(getattr(edge.client.v1.customers.retrieve(customer), "balance", 0) or 0)
            if balance > 0:
                # Stripe would add the debit to this invoice and collect more than is due here.
                _skip(
                    scope,
                    invoice_id,
                    f"Stripe customer {customer} has a debit balance of {balance} (minor units) that Stripe would add "
                    "to this invoice: settle that balance in Stripe, then retry the sync",
                    release=True,
                )
                metrics.add_metric(name="StripeSyncBlockedByBalance", unit="Count", value=1)
                return None
            params: dict[str, Any] = {
                "customer": customer,
                "currency": currency,
                "collection_method": "send_invoice" if send else "charge_automatically",
                "auto_advance": False,
                "pending_invoice_items_behavior": "exclude",
                "description": f"Invoice {invoice.get('invoice_number') or invoice_id}",
                "metadata": _our_metadata(scope, invoice),
            }
            if send:
                params["days_until_due"] = DAYS_UNTIL_DUE
            stripe_invoice = edge.client.v1.invoices.create(
                params, stripe_edge.options(stripe_edge.key("invoice.create", invoice_id, params=params))
            )
        mappings.link(
            scope,
            "invoice",
            invoice_id,
            PROVIDER,
            stripe_invoice.id,
            {"state": "draft", "paid_before": str(paid_before), "collect_minor": expected},
        )
        if stripe_invoice.status == "draft":
            have = {
                _metadata(item).get("flexprice_line_item_id")
                for item in edge.client.v1.invoice_items.list(
                    {"invoice": stripe_invoice.id, "limit": 100}
                ).auto_paging_iter()
            }
            for line_id, item in _items(invoice, currency, paid_before, charge):
                if line_id in have:
                    continue
                params = {**item, "customer": customer, "invoice": stripe_invoice.id, "currency": currency}
                edge.client.v1.invoice_items.create(
                    params, stripe_edge.options(stripe_edge.key("invoice_item", invoice_id, line_id, params=params))
                )
            draft = edge.client.v1.invoices.retrieve(stripe_invoice.id)
            if draft.total != expected:
                raise SyncMismatch(f"invoice {invoice_id}: Stripe's draft totals {draft.total}, ours is {expected}")
            done = edge.client.v1.invoices.finalize_invoice(
                stripe_invoice.id,
                {"auto_advance": True},
                stripe_edge.options(stripe_edge.key("invoice.finalize", invoice_id)),
            )
        else:
            done = stripe_invoice
        if send and done.status == "open":
            done = edge.client.v1.invoices.send_invoice(
                stripe_invoice.id, options=stripe_edge.options(stripe_edge.key("invoice.send", invoice_id))
            )
    if done.total != expected:
        raise SyncMismatch(f"invoice {invoice_id}: Stripe finalized {done.total}, ours is {expected}")

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
