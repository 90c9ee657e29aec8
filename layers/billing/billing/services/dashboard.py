"""The business figures of the operator dashboards for one period (``GET /dashboard/summary``).

Everything is read with Queries on the environment's own partitions of ``EntitiesTable`` (never a Scan, nothing
written): ``<p>#invoice``, ``<p>#payment``, ``<p>#stripe_payment``, ``<p>#subscription`` and ``<p>#customer``.
Each partition is read in pages of at most ``PAGE_SIZE`` items (key-ordered, resumed after the last key seen) and
folded into counters as it goes, so memory stays flat whatever the partition's size; the cost of a call is one
read per stored item of those kinds. No index orders these items by the time a figure depends on (an invoice's id
is not ordered by its finalization time), which is why whole partitions are read.

Periods are half-open, ``[start, end)``. Definitions (``docs/operations.md`` has the operator's version):

- revenue, per currency (sums in Decimal, never across currencies): invoices finalized in the period and still
  FINALIZED (voided ones excluded): ``total`` (invoiced), ``amount_paid`` (paid), ``amount_remaining``
  (outstanding), their count (``amount_paid`` is net of refunds and of funds disputes hold); plus ``collected``: the
  amounts of the payments that succeeded in the period, ``refunded`` and ``disputed``: what of those was refunded
  since or is held by a dispute, and ``collected_net`` = collected - refunded - disputed.
- invoices: ``created`` / ``by_status`` by the draft's ``created_at``; ``finalized`` / ``by_payment_status`` (the
  current payment status) of the invoices counted in revenue.
- payments: payment records (API payments and the ones recorded from Stripe-collected invoices) that succeeded or
  failed in the period, by their current status (a failed payment retried to success counts as succeeded).
- subscriptions: a subscription begins at the later of its ``created_at`` and ``start_date`` and ends at its
  ``cancelled_at`` (or at a scheduled ``cancel_at`` that has passed). ``active_at_start``/``active_at_end``: begun
  before the instant and not ended before it; ``created``: ``created_at`` in the period; ``cancelled``: ended in
  the period; ``churned``: those of ``active_at_start`` that ended in the period (the churn rate's numerator).
- customers: ``created``: customers whose ``created_at`` is in the period (not filtered by currency).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing import wiring
from billing.schemas.dashboard import DashboardQuery
from billing.schemas.invoices import InvoiceStatus, PaymentStatus
from billing.scope import Scope
from billing.services import analytics
from billing.store.entities import entity_pk
from billing.timeutil import parse_iso

PAGE_SIZE = 500
COLLECTED = ("SUCCEEDED", "PARTIALLY_REFUNDED", "REFUNDED")  # payments that took money (some given back since)
ZERO = Decimal(0)
# Sort keys of the entity partitions are ids ("inv_...", "pay_...", "subs_..."): letters, digits and "_",
# which all sort between these two bounds.
_LOWEST, _HIGHEST = " ", "~"
INVOICE_STATUSES: tuple[str, ...] = InvoiceStatus.__args__  # type: ignore[attr-defined]
PAYMENT_STATUSES: tuple[str, ...] = PaymentStatus.__args__  # type: ignore[attr-defined]


def partition(scope: Scope, kind: str, page_size: int = PAGE_SIZE) -> Iterator[dict[str, Any]]:
    """Every item of one entity partition, in key order, ``page_size`` items per Query."""
    table = wiring.entities()
    pk = entity_pk(scope, kind)
    after: str | None = None
    while True:
        # BETWEEN is inclusive: a resumed page starts at the last key seen, which is dropped.
        want = page_size if after is None else page_size + 1
        page = list(table.query_pages(pk, sk_between=(after or _LOWEST, _HIGHEST), limit=want))
        for item in page:
            if item["SK"] != after:
                yield item
        if len(page) < want:
            return
        after = str(page[-1]["SK"])


def _within(stamp: Any, start: datetime, end: datetime) -> bool:
    return bool(stamp) and start <= parse_iso(str(stamp)) < end


def _revenue_row() -> dict[str, Any]:
    return {
        "invoiced": ZERO,
        "paid": ZERO,
        "outstanding": ZERO,
        "invoice_count": 0,
        "collected": ZERO,
        "refunded": ZERO,
        "disputed": ZERO,
    }


def _invoices(scope: Scope, currency: str | None, start: datetime, end: datetime, out: dict[str, Any]) -> None:
    figures = out["invoices"]
    for invoice in partition(scope, "invoice"):
        code = str(invoice["currency"])
        if currency and code != currency:
            continue
        status = str(invoice["invoice_status"])
        if _within(invoice.get("created_at"), start, end):
            figures["created"] += 1
            figures["by_status"][status] = figures["by_status"].get(status, 0) + 1
        if status != "FINALIZED" or not _within(invoice.get("finalized_at"), start, end):
            continue
        figures["finalized"] += 1
        paying = str(invoice["payment_status"])
        figures["by_payment_status"][paying] = figures["by_payment_status"].get(paying, 0) + 1
        row = out["revenue"].setdefault(code, _revenue_row())
        row["invoiced"] += Decimal(invoice["total"])
        row["paid"] += Decimal(invoice.get("amount_paid") or 0)
        row["outstanding"] += Decimal(invoice.get("amount_remaining") or 0)
        row["invoice_count"] += 1


def _payments(scope: Scope, currency: str | None, start: datetime, end: datetime, out: dict[str, Any]) -> None:
    figures = out["payments"]
    for kind in ("payment", "stripe_payment"):
        for payment in partition(scope, kind):
            code = str(payment["currency"])
            if currency and code != currency:
                continue
            status = payment.get("payment_status")
            if status in COLLECTED and _within(payment.get("succeeded_at"), start, end):
                figures["succeeded"] += 1
                row = out["revenue"].setdefault(code, _revenue_row())
                row["collected"] += Decimal(payment["amount"])
                row["refunded"] += Decimal(payment.get("refunded_amount") or 0)
                row["disputed"] += Decimal(payment.get("disputed_amount") or 0)
            elif status == "FAILED" and _within(payment.get("failed_at"), start, end):
                figures["failed"] += 1


def lifetime(sub: dict[str, Any], now: datetime) -> tuple[datetime, datetime | None]:
    """When a subscription began and when it ended (None while it runs)."""
    began = max(parse_iso(sub["created_at"]), parse_iso(sub["start_date"]))
    if sub.get("cancelled_at"):
        return began, parse_iso(sub["cancelled_at"])
    if sub.get("cancel_at_period_end") and sub.get("cancel_at"):
        scheduled = parse_iso(sub["cancel_at"])
        return began, scheduled if scheduled <= now else None
    return began, None


def _subscriptions(
    scope: Scope, currency: str | None, start: datetime, end: datetime, now: datetime, out: dict[str, Any]
) -> None:
    figures = out["subscriptions"]
    for sub in partition(scope, "subscription"):
        if currency and sub["currency"] != currency:
            continue
        began, ended = lifetime(sub, now)
        at_start = began < start and (ended is None or ended >= start)
        ended_in = ended is not None and start <= ended < end
        figures["active_at_start"] += int(at_start)
        figures["active_at_end"] += int(began < end and (ended is None or ended >= end))
        figures["created"] += int(_within(sub.get("created_at"), start, end))
        figures["cancelled"] += int(ended_in)
        figures["churned"] += int(at_start and ended_in)


def summary(scope: Scope, query: DashboardQuery, now: datetime) -> dict[str, Any]:
    start, end = query.period(now)
    out: dict[str, Any] = {
        "start": start,
        "end": end,
        "currency": query.currency,
        "revenue": {},
        "invoices": {
            "created": 0,
            "by_status": dict.fromkeys(INVOICE_STATUSES, 0),
            "finalized": 0,
            "by_payment_status": dict.fromkeys(PAYMENT_STATUSES, 0),
        },
        "payments": {"succeeded": 0, "failed": 0},
        "subscriptions": {"active_at_start": 0, "active_at_end": 0, "created": 0, "cancelled": 0, "churned": 0},
        "customers": {"created": 0},
    }
    _invoices(scope, query.currency, start, end, out)
    _payments(scope, query.currency, start, end, out)
    _subscriptions(scope, query.currency, start, end, now, out)
    out["customers"]["created"] = sum(
        1 for customer in partition(scope, "customer") if _within(customer.get("created_at"), start, end)
    )
    out["usage"] = analytics.usage_summary(scope, start, end)
    return out
