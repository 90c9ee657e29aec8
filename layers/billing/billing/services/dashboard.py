"""The business figures of the operator dashboards for one period (``GET /dashboard/summary``).

The figures come from the per-day aggregates that every write of an invoice, payment, subscription or customer
keeps in its own transaction (``store.aggregates``, ``domain.aggregates``): a period reads the aggregates of its
whole days (one Query, a few items per day and currency), and reads exactly, record by record, only the days it
covers in part (a boundary that is not midnight UTC) and the days from today on (a cancellation scheduled for later
today has not happened yet). "Active at an instant" adds the year, month and day buckets before it (three Queries).
So a summary reads O(days in the period) items whatever the environment holds. ``repair`` recomputes the
aggregates from the records (the backfill of existing data, and the check that they agree).

Periods are half-open, ``[start, end)``. Definitions (``docs/operations.md`` has the operator's version):

- revenue, per currency (sums in Decimal, never across currencies): invoices finalized in the period and still
  FINALIZED (voided ones excluded): ``total`` (invoiced: after discounts and prepaid credits, taxes included; the
  ``subtotal`` before them, ``total_discount``, ``total_prepaid_credits_applied`` and ``total_tax`` are summed beside
  it, so revenue before/after credits and excluding tax are all shown), ``amount_paid`` (paid), ``amount_remaining``
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
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from billing import wiring
from billing.domain import aggregates as math
from billing.schemas.dashboard import DashboardQuery
from billing.schemas.invoices import InvoiceStatus, PaymentStatus
from billing.scope import Scope
from billing.services import analytics
from billing.store import aggregates as store
from billing.store.entities import entity_pk, strip_keys
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


DAY = timedelta(days=1)


def _midnight(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _day(at: datetime) -> str:
    return at.strftime("%Y-%m-%d")


def _revenue_row() -> dict[str, Any]:
    return {
        "invoiced": ZERO,
        "subtotal": ZERO,
        "discounts": ZERO,
        "credits": ZERO,
        "taxes": ZERO,
        "paid": ZERO,
        "outstanding": ZERO,
        "invoice_count": 0,
        "collected": ZERO,
        "refunded": ZERO,
        "disputed": ZERO,
    }


def lifetime(sub: dict[str, Any], now: datetime) -> tuple[datetime, datetime | None]:
    """When a subscription began and when it ended (None while it runs; a scheduled end counts once passed)."""
    began, ended = math.lifetime(sub)
    if ended is not None and not sub.get("cancelled_at") and ended > now:
        return began, None
    return began, ended


class _Period:
    """The period split into whole past days (read as aggregates) and exact windows (read record by record)."""

    def __init__(self, start: datetime, end: datetime, now: datetime) -> None:
        self.start, self.end, self.now = start, end, now
        today = _midnight(now)
        first = _midnight(start) if start == _midnight(start) else _midnight(start) + DAY
        self.whole_from = first
        self.whole_to = max(first, min(_midnight(end), today))  # [whole_from, whole_to): whole days before today
        self.exact: list[tuple[datetime, datetime]] = []
        if start < self.whole_from:
            self.exact.append((start, min(end, self.whole_from)))
        if self.whole_to < end and self.whole_to >= start:
            self.exact.append((max(start, self.whole_to), end))

    def exact_days(self) -> list[str]:
        days: list[str] = []
        for lo, hi in self.exact:
            day = _midnight(lo)
            while day < hi:
                days.append(_day(day))
                day += DAY
        return days

    def in_exact(self, at: datetime | None) -> bool:
        return at is not None and any(lo <= at < hi for lo, hi in self.exact)

    def in_whole(self, at: datetime | None) -> bool:
        return at is not None and self.whole_from <= at < self.whole_to


def _rows(
    buckets: dict[tuple[str, str], dict[str, Decimal]], currency: str | None
) -> Iterator[tuple[str, dict[str, Decimal]]]:
    for (_, row), figures in buckets.items():
        if row == math.NO_CURRENCY or currency is None or row == currency:
            yield row, figures


def _whole_days(scope: Scope, period: _Period, currency: str | None, out: dict[str, Any]) -> None:
    if period.whole_to <= period.whole_from:
        return
    low, high = f"D#{_day(period.whole_from)}", f"D#{_day(period.whole_to - DAY)}~"
    buckets = store.read_buckets(wiring.entities(), scope, low, high)
    start_day = period.start.strftime("%Y%m%d")
    for row, f in _rows(buckets, currency):
        n = {k: int(v) for k, v in f.items() if not isinstance(v, Decimal) or v == v.to_integral_value()}
        out["customers"]["created"] += n.get("cust_created", 0)
        if row == math.NO_CURRENCY:
            continue
        inv, subs = out["invoices"], out["subscriptions"]
        inv["created"] += n.get("inv_created", 0)
        for status in INVOICE_STATUSES:
            inv["by_status"][status] += n.get(f"inv_created_{status}", 0)
        inv["finalized"] += n.get("inv_fin", 0)
        for status in PAYMENT_STATUSES:
            inv["by_payment_status"][status] += n.get(f"inv_fin_{status}", 0)
        out["payments"]["succeeded"] += n.get("pay_ok", 0)
        out["payments"]["failed"] += n.get("pay_failed", 0)
        subs["created"] += n.get("sub_created", 0)
        subs["cancelled"] += n.get("sub_ended", 0)
        subs["churned"] += sum(v for k, v in n.items() if k.startswith("sub_eb_") and k[7:] < start_day)
        if f.get("inv_fin") or f.get("pay_ok"):
            money = out["revenue"].setdefault(row, _revenue_row())
            money["invoiced"] += f.get("invoiced", ZERO)
            for figure in ("subtotal", "discounts", "credits", "taxes"):
                money[figure] += f.get(figure, ZERO)
            money["paid"] += f.get("paid", ZERO)
            money["outstanding"] += f.get("outstanding", ZERO)
            money["invoice_count"] += n.get("inv_fin", 0)
            money["collected"] += f.get("collected", ZERO)
            money["refunded"] += f.get("refunded", ZERO)
            money["disputed"] += f.get("disputed", ZERO)


def _records(scope: Scope, days: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for day in dict.fromkeys(days):
        for kind, item in store.day_records(wiring.entities(), scope, day):
            found[(kind, str(item["id"]))] = strip_keys(item)
    return found


def _at(record: dict[str, Any], field: str) -> datetime | None:
    value = record.get(field)
    return parse_iso(str(value)) if value else None


def _exact(
    scope: Scope,
    period: _Period,
    records: dict[tuple[str, str], dict[str, Any]],
    currency: str | None,
    out: dict[str, Any],
) -> None:
    """The figures of the exact windows, from the records that contributed to their days."""
    for (kind, _), record in records.items():
        if kind == "customer":
            out["customers"]["created"] += int(period.in_exact(_at(record, "created_at")))
            continue
        code = str(record["currency"])
        if currency and code != currency:
            continue
        if kind == "invoice":
            _exact_invoice(period, record, out)
        elif kind == "payment":
            _exact_payment(period, record, out)
        elif kind == "subscription":
            subs = out["subscriptions"]
            subs["created"] += int(period.in_exact(_at(record, "created_at")))
            began, ended = lifetime(record, period.now)
            if period.in_exact(ended):
                subs["cancelled"] += 1
                subs["churned"] += int(began < period.start)
            elif period.in_whole(ended) and _midnight(began) == _midnight(period.start) and began < period.start:
                subs["churned"] += 1  # the whole days' churn counts those begun before the start's day


def _exact_invoice(period: _Period, invoice: dict[str, Any], out: dict[str, Any]) -> None:
    figures = out["invoices"]
    status = str(invoice["invoice_status"])
    if period.in_exact(_at(invoice, "created_at")):
        figures["created"] += 1
        figures["by_status"][status] = figures["by_status"].get(status, 0) + 1
    if status != "FINALIZED" or not period.in_exact(_at(invoice, "finalized_at")):
        return
    figures["finalized"] += 1
    paying = str(invoice["payment_status"])
    figures["by_payment_status"][paying] = figures["by_payment_status"].get(paying, 0) + 1
    row = out["revenue"].setdefault(str(invoice["currency"]), _revenue_row())
    row["invoiced"] += Decimal(invoice["total"])
    row["subtotal"] += Decimal(invoice.get("subtotal") or invoice["total"])
    row["discounts"] += Decimal(invoice.get("total_discount") or 0)
    row["credits"] += Decimal(invoice.get("total_prepaid_credits_applied") or 0)
    row["taxes"] += Decimal(invoice.get("total_tax") or 0)
    row["paid"] += Decimal(invoice.get("amount_paid") or 0)
    row["outstanding"] += Decimal(invoice.get("amount_remaining") or 0)
    row["invoice_count"] += 1


def _exact_payment(period: _Period, payment: dict[str, Any], out: dict[str, Any]) -> None:
    status = payment.get("payment_status")
    if status in COLLECTED and period.in_exact(_at(payment, "succeeded_at")):
        out["payments"]["succeeded"] += 1
        row = out["revenue"].setdefault(str(payment["currency"]), _revenue_row())
        row["collected"] += Decimal(payment["amount"])
        row["refunded"] += Decimal(payment.get("refunded_amount") or 0)
        row["disputed"] += Decimal(payment.get("disputed_amount") or 0)
    elif status == "FAILED" and period.in_exact(_at(payment, "failed_at")):
        out["payments"]["failed"] += 1


def active_at(scope: Scope, at: datetime, now: datetime, currency: str | None) -> int:
    """Subscriptions begun before ``at`` and not ended before it: year, month and day buckets before the cut-off
    day (the earlier of ``at``'s day and today), then the records of the days from the cut-off to ``at``."""
    table = wiring.entities()
    cut = min(_midnight(at), _midnight(now))
    began = gone = 0
    ranges = [("Y#0000", f"Y#{cut.year - 1:04d}~")]
    if cut.month > 1:
        ranges.append((f"M#{cut.year:04d}-01", f"M#{cut.year:04d}-{cut.month - 1:02d}~"))
    if cut.day > 1:
        ranges.append((f"D#{cut.strftime('%Y-%m')}-01", f"D#{_day(cut - DAY)}~"))
    for low, high in ranges:
        for row, figures in _rows(store.read_buckets(table, scope, low, high), currency):
            if row != math.NO_CURRENCY:
                began += int(figures.get("sub_began", 0))
                gone += int(figures.get("sub_gone", 0))
    days = []
    day = cut
    while day < at:
        days.append(_day(day))
        day += DAY
    for (kind, _), record in _records(scope, days).items():
        if kind != "subscription" or (currency and record["currency"] != currency):
            continue
        start, end = lifetime(record, now)
        began += int(cut <= start < at)
        if end is not None:
            gone_at = max(start, end)
            gone += int(cut <= gone_at < at)
    return began - gone


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
    period = _Period(start, end, now)
    _whole_days(scope, period, query.currency, out)
    _exact(scope, period, _records(scope, period.exact_days()), query.currency, out)
    subs = out["subscriptions"]
    subs["active_at_start"] = active_at(scope, start, now, query.currency)
    subs["active_at_end"] = active_at(scope, end, now, query.currency)
    out["usage"] = analytics.usage_summary(scope, start, end)
    return out
