"""Repair what webhooks missed, and show where we and Stripe disagree.

``run`` (scheduled): for every Stripe connection in the connections index (one Query, never a Scan) that is still the
environment's active one, list Stripe's events created since the environment's cursor (minus an overlap, since
events of the same second may be listed late) and feed each through the same processing as a webhook
(``webhooks.process``): what was already processed is skipped by its record, what was missed is applied. The cursor
(``PK=<p>#webhook_cursor``, ``SK=stripe``: ``created``, the newest event time seen) never moves past an event that
failed, so a failing event is listed again on the next run until it applies (and its webhook copy goes to the DLQ).

``drift``: our invoices that are linked to Stripe invoices, side by side with Stripe's status and total.
"""

from __future__ import annotations

import contextlib
from decimal import Decimal
from typing import Any

from billing import stripe_gateway, wiring
from billing.domain.money import from_minor_units
from billing.observability import logger, metrics
from billing.scope import Scope
from billing.services import connections, mappings, webhooks
from billing.store import invoices as invoice_keys
from billing.store.dynamo import ConditionFailed
from billing.timeutil import parse_iso

PROVIDER = "stripe"
OVERLAP_SECONDS = 300
MAX_EVENTS_PER_RUN = 1000
CURSOR_SK = "stripe"


def cursor_pk(scope: Scope) -> str:
    return f"{scope.prefix}#webhook_cursor"


def cursor(scope: Scope) -> int | None:
    item = wiring.entities().get(cursor_pk(scope), CURSOR_SK)
    return int(item["created"]) if item else None


def _save_cursor(scope: Scope, created: int) -> None:
    """Move the cursor forward only (two overlapping runs never move it back)."""
    with contextlib.suppress(ConditionFailed):
        wiring.entities().update(
            cursor_pk(scope),
            CURSOR_SK,
            "SET created = :c",
            condition="attribute_not_exists(created) OR created < :c",
            values={":c": created},
        )


def indexed_connections() -> list[dict[str, Any]]:
    return wiring.entities().query(webhooks.CONNECTIONS_INDEX_PK)


def _client(scope: Scope, connection: dict[str, Any]) -> Any:
    return stripe_gateway.client_for(connections.stripe_credentials(scope, connection)["secret_key"])


def reconcile_environment(scope: Scope, connection: dict[str, Any]) -> dict[str, int]:
    since = cursor(scope)
    if since is None:
        since = int(parse_iso(connection["created_at"]).timestamp())
    listed = _client(scope, connection).v1.events.list({"created": {"gte": since - OVERLAP_SECONDS}, "limit": 100})
    events: list[dict[str, Any]] = []
    for event in listed.auto_paging_iter():
        events.append(event.to_dict())
        if len(events) >= MAX_EVENTS_PER_RUN:
            break
    events.sort(key=lambda e: (int(e.get("created") or 0), str(e["id"])))
    counts = {"listed": len(events), "applied": 0, "skipped": 0, "failed": 0}
    high = since
    blocked = False
    for event in events:
        record = webhooks.find_record(scope, str(event["id"]))
        if record is not None and record.get("status") == "processed":
            counts["skipped"] += 1
        else:
            try:
                outcome = webhooks.process(scope, event, source="reconciliation")
                if outcome == "duplicate":  # a delivery applied it in the meantime
                    counts["skipped"] += 1
                else:
                    counts["applied"] += 1
                    metrics.add_metric(name="WebhookRepaired", unit="Count", value=1)
            except Exception:
                counts["failed"] += 1
                blocked = True  # the cursor stays before this event
        if not blocked:
            high = max(high, int(event.get("created") or 0))
    _save_cursor(scope, high)
    return counts


def run() -> dict[str, int]:
    totals = {"environments": 0, "listed": 0, "applied": 0, "skipped": 0, "failed": 0, "errors": 0}
    for item in indexed_connections():
        scope = Scope(item["tenant_id"], item["environment_id"])
        connection = connections.active(scope, PROVIDER)
        if connection is None or connection["id"] != item["connection_id"]:
            continue
        totals["environments"] += 1
        try:
            counts = reconcile_environment(scope, connection)
        except Exception:
            totals["errors"] += 1
            logger.exception("reconciliation of an environment failed", extra={"tenant_id": scope.tenant_id})
            continue
        for key, value in counts.items():
            totals[key] += value
    logger.info("webhook reconciliation finished", extra=totals)
    return totals


# ---------------------------------------------------------------------------------------------- drift

_STRIPE_TO_OURS = {"paid": "SUCCEEDED", "void": "VOIDED", "uncollectible": "FAILED", "draft": "PENDING"}


def _stripe_status(invoice: Any) -> str:
    status = str(invoice.status)
    if status == "open":
        return "FAILED" if getattr(invoice, "attempted", False) and invoice.attempt_count else "PENDING"
    return _STRIPE_TO_OURS.get(status, status.upper())


def drift(scope: Scope) -> list[dict[str, Any]]:
    """One row per invoice of ours that is linked to a Stripe invoice: status and total on both sides."""
    connection = connections.active(scope, PROVIDER)
    if connection is None:
        return []
    client = _client(scope, connection)
    rows = []
    for invoice in invoice_keys.invoices().list(scope):
        mapping = mappings.find(scope, "invoice", invoice["id"], PROVIDER)
        if mapping is None:
            continue
        theirs = client.v1.invoices.retrieve(mapping["provider_entity_id"])
        ours_status = "VOIDED" if invoice["invoice_status"] == "VOIDED" else invoice["payment_status"]
        stripe_total = from_minor_units(int(theirs.total), str(theirs.currency))
        ours_total = Decimal(invoice["total"])
        rows.append(
            {
                "invoice_id": invoice["id"],
                "invoice_number": invoice.get("invoice_number"),
                "stripe_invoice_id": theirs.id,
                "ours_status": ours_status,
                "stripe_status": _stripe_status(theirs),
                "ours_total": ours_total,
                "stripe_total": stripe_total,
                "currency": invoice["currency"],
                "drift": ours_status != _stripe_status(theirs) or ours_total != stripe_total,
            }
        )
    return rows
