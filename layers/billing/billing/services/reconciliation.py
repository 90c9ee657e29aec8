"""Repair what webhooks missed, and show where we and Stripe disagree.

``run`` (scheduled): for every Stripe connection in the connections index (one Query, never a Scan) that is still the
environment's active one, read Stripe's events created since the environment's cursor (minus an overlap, since
events of the same second may be listed late) **oldest first**, and feed each through the same processing as a webhook
(``webhooks.process``): what was already processed is skipped by its record, what was missed is applied.

Stripe lists events newest first only. ``events_since`` reads them in time order one page at a time: the oldest page
of whole seconds since the start (found with ``created`` bounds: the first listing when it holds everything, else a
bisection on time, about twenty small listings for a month of events), then every newer page with ``ending_before``
(which the SDK walks towards newer events). However many events there are, each is read once per run.

A run is bounded by time, not by a count: the function's remaining time (less a margin) shared among the environments
still to do. The cursor (``PK=<p>#webhook_cursor``, ``SK=stripe``: ``created``) moves only over events that were
applied or already processed, in order: it stops before the first event that failed (listed again next run until it
applies; its webhook copy goes to the DLQ) and before anything the run had no time for. It only moves forward.

``drift``: our invoices that are linked to Stripe invoices, side by side with Stripe's status and total.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from billing import stripe_edge, wiring
from billing.domain.money import from_minor_units
from billing.observability import logger, metrics
from billing.scope import Scope
from billing.services import mappings, webhooks
from billing.store import invoices as invoice_keys
from billing.store.dynamo import ConditionFailed
from billing.timeutil import parse_iso

PROVIDER = "stripe"
OVERLAP_SECONDS = 300
PAGE = 100
CURSOR_SK = "stripe"
# Without a Lambda context (tools, tests), a run takes at most this long.
DEFAULT_BUDGET_SECONDS = 60.0
# Time kept back from the function's timeout: the event being applied, the cursor write, the metrics flush.
MAX_MARGIN_SECONDS = 30.0


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


# ---------------------------------------------------------------------------------------------- events in time order


def _plain(event: Any) -> dict[str, Any]:
    return event.to_dict() if hasattr(event, "to_dict") else dict(event)


def _list(client: Any, created: dict[str, int] | int, **more: Any) -> Any:
    return client.v1.events.list({"created": created, "limit": PAGE, **more})


def _oldest_page(client: Any, since: int) -> list[dict[str, Any]]:
    """The oldest events created at or after ``since``, oldest first: all of them when they fit in one page, else the
    oldest whole seconds that do (found by bisecting on time), else every event of the oldest second."""
    page = _list(client, {"gte": since})
    if not page.has_more:
        return [_plain(e) for e in reversed(page.data)]
    fits, too_many = since - 1, int(page.data[-1].created)
    best: list[Any] = []
    top = _list(client, {"gte": since, "lte": too_many})
    if not top.has_more:
        return [_plain(e) for e in reversed(top.data)]
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        window = _list(client, {"gte": since, "lte": middle})
        if window.has_more:
            too_many = middle
        else:
            fits, best = middle, list(window.data)
    if best:
        return [_plain(e) for e in reversed(best)]
    # The oldest second alone holds more than a page: read that second whole.
    crowded = [_plain(e) for e in _list(client, too_many).auto_paging_iter()]
    return list(reversed(crowded))


def events_since(client: Any, since: int) -> Iterator[dict[str, Any]]:
    """Every Stripe event created at or after ``since``, oldest first, one page at a time."""
    first = _oldest_page(client, since)
    yield from first
    if not first:
        return
    newer = client.v1.events.list({"ending_before": first[-1]["id"], "limit": PAGE})
    for event in newer.auto_paging_iter():  # with ending_before the SDK walks towards newer events, oldest first
        yield _plain(event)


# ---------------------------------------------------------------------------------------------- runs


def reconcile_environment(
    scope: Scope, connection: dict[str, Any], *, deadline: float | None = None, client: Any = None
) -> dict[str, int]:
    """Apply the events since the cursor that were not processed, oldest first, until done or ``deadline``
    (``time.monotonic()``). Returns counts; ``out_of_time`` is 1 when the run stopped with events left."""
    if deadline is None:
        deadline = time.monotonic() + DEFAULT_BUDGET_SECONDS
    if client is None:
        client = stripe_edge.require(scope).client
    since = cursor(scope)
    if since is None:
        since = int(parse_iso(connection["created_at"]).timestamp())
    counts = {"listed": 0, "applied": 0, "skipped": 0, "failed": 0, "out_of_time": 0}
    high, blocked = since, False
    for page in _pages(events_since(client, since - OVERLAP_SECONDS)):
        done = _processed(scope, page)  # one BatchGetItem per page instead of a read per event
        for event in page:
            if time.monotonic() >= deadline:
                counts["out_of_time"] = 1
                break
            counts["listed"] += 1
            if str(event["id"]) in done:
                counts["skipped"] += 1
            elif _apply(scope, event, counts):
                blocked = True  # the cursor stays before this event; later ones are still applied
            if not blocked:
                high = max(high, int(event.get("created") or 0))
        if counts["out_of_time"]:
            break
        _save_cursor(scope, high)  # progress survives whatever ends this run
    _save_cursor(scope, high)
    return counts


def _pages(events: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    page: list[dict[str, Any]] = []
    for event in events:
        page.append(event)
        if len(page) == PAGE:
            yield page
            page = []
    if page:
        yield page


def _processed(scope: Scope, page: list[dict[str, Any]]) -> set[str]:
    pk = webhooks.record_pk(scope)
    records = wiring.entities().batch_get([(pk, event_id) for event_id in dict.fromkeys(str(e["id"]) for e in page)])
    return {str(r["SK"]) for r in records if r.get("status") == "processed"}


def _apply(scope: Scope, event: dict[str, Any], counts: dict[str, int]) -> bool:
    """Process one missed event; returns whether it failed."""
    try:
        outcome = webhooks.process(scope, event, source="reconciliation")
    except Exception:
        counts["failed"] += 1
        logger.warning("reconciliation could not apply an event", extra={"stripe_event_id": event["id"]}, exc_info=True)
        return True
    if outcome == "duplicate":  # a delivery applied it in the meantime
        counts["skipped"] += 1
    else:
        counts["applied"] += 1
        metrics.add_metric(name="WebhookRepaired", unit="Count", value=1)
    return False


def _deadline(context: Any, budget_seconds: float | None) -> float:
    now = time.monotonic()
    if budget_seconds is not None:
        return now + budget_seconds
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return now + DEFAULT_BUDGET_SECONDS
    left = int(remaining()) / 1000
    return now + left - min(MAX_MARGIN_SECONDS, left * 0.2)


def run(context: Any = None, *, budget_seconds: float | None = None) -> dict[str, int]:
    """Reconcile every environment with an active Stripe connection within the function's time."""
    deadline = _deadline(context, budget_seconds)
    todo = []
    for item in indexed_connections():
        scope = Scope(item["tenant_id"], item["environment_id"])
        connection = stripe_edge.active_connection(scope)
        if connection is not None and connection["id"] == item["connection_id"]:
            todo.append((scope, connection))
    totals = {"environments": 0, "listed": 0, "applied": 0, "skipped": 0, "failed": 0, "errors": 0, "out_of_time": 0}
    for position, (scope, connection) in enumerate(todo):
        # Each environment gets an equal share of what is left, so one backlog never starves the others.
        now = time.monotonic()
        share = max(0.0, deadline - now) / (len(todo) - position)
        totals["environments"] += 1
        try:
            counts = reconcile_environment(scope, connection, deadline=now + share)
        except Exception:
            totals["errors"] += 1
            logger.exception("reconciliation of an environment failed", extra={"tenant_id": scope.tenant_id})
            continue
        for key, value in counts.items():
            totals[key] += value
    if totals["out_of_time"]:
        metrics.add_metric(name="WebhookReconcileOutOfTime", unit="Count", value=totals["out_of_time"])
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
    edge = stripe_edge.connect(scope)
    if edge is None:
        return []
    client = edge.client
    rows = []
    for invoice in invoice_keys.invoices().list(scope):
        mapping = mappings.find(scope, "invoice", invoice["id"], PROVIDER)
        if mapping is None:
            continue
        theirs = client.v1.invoices.retrieve(mapping["provider_entity_id"])
        ours_status = "VOIDED" if invoice["invoice_status"] == "VOIDED" else invoice["payment_status"]
        stripe_total = from_minor_units(int(theirs.total), str(theirs.currency))
        # What the Stripe invoice was built to total: our amount due less what was paid here before it was sent.
        built = (mapping.get("metadata") or {}).get("collect_minor")
        ours_total = (
            from_minor_units(int(built), str(invoice["currency"])) if built is not None else Decimal(invoice["total"])
        )
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
