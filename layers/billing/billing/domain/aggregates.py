"""What one invoice, payment, subscription or customer adds to the dashboard's per-day figures (pure, no I/O).

A record *contributes* amounts to buckets: ``(bucket, row) -> {figure: amount}`` where ``bucket`` is a UTC day
(``D#YYYY-MM-DD``), month (``M#YYYY-MM``) or year (``Y#YYYY``) and ``row`` a currency (``-`` for figures without one:
customers). A change of a record moves every bucket by ``contributions(after) - contributions(before)``; the sums of
all records' contributions are the stored aggregates, so they are exact as long as every change goes through
``delta``. ``days`` lists the UTC days a record contributes to: the exact reads of a partial boundary day read the
records that contributed to it.

Figures (definitions of ``services.dashboard``):

- invoices, by the day of ``created_at``: ``inv_created``, ``inv_created_<INVOICE_STATUS>``; by the day of
  ``finalized_at`` while FINALIZED: ``inv_fin``, ``inv_fin_<PAYMENT_STATUS>``, ``invoiced`` (total), ``paid``
  (amount_paid), ``outstanding`` (amount_remaining);
- payments, by the day of ``succeeded_at`` while SUCCEEDED, PARTIALLY_REFUNDED or REFUNDED: ``pay_ok``,
  ``collected`` (amount), ``refunded``, ``disputed``; by the day of ``failed_at`` while FAILED: ``pay_failed``;
- subscriptions, by the day of ``created_at``: ``sub_created``; by the day (and month and year) they began:
  ``sub_began``; by the day they ended: ``sub_ended`` and ``sub_eb_<YYYYMMDD of the day they began>`` (churn);
  by the day (and month and year) of the later of their end and their beginning: ``sub_gone`` (so "active at t" is
  ``sub_began`` before t minus ``sub_gone`` before t, from a few year, month and day buckets);
- customers, by the day of ``created_at``: ``cust_created`` (row ``-``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.timeutil import parse_iso

NO_CURRENCY = "-"
COLLECTED = ("SUCCEEDED", "PARTIALLY_REFUNDED", "REFUNDED")
Buckets = dict[tuple[str, str], dict[str, Decimal]]


def day_key(at: datetime) -> str:
    return f"D#{at.strftime('%Y-%m-%d')}"


def _add(out: Buckets, bucket: str, row: str, figures: Mapping[str, Any]) -> None:
    slot = out.setdefault((bucket, row), {})
    for name, amount in figures.items():
        slot[name] = slot.get(name, Decimal(0)) + Decimal(str(amount))


def _at(record: Mapping[str, Any], field: str) -> datetime | None:
    value = record.get(field)
    return parse_iso(str(value)) if value else None


def lifetime(sub: Mapping[str, Any]) -> tuple[datetime, datetime | None]:
    """When a subscription began and when it ends (a scheduled end counts at its time; None while open-ended)."""
    began = max(parse_iso(sub["created_at"]), parse_iso(sub["start_date"]))
    if sub.get("cancelled_at"):
        return began, parse_iso(sub["cancelled_at"])
    if sub.get("cancel_at_period_end") and sub.get("cancel_at"):
        return began, parse_iso(sub["cancel_at"])
    return began, None


def _invoice(record: Mapping[str, Any], out: Buckets) -> None:
    row = str(record["currency"])
    status = str(record["invoice_status"])
    created = _at(record, "created_at")
    if created:
        _add(out, day_key(created), row, {"inv_created": 1, f"inv_created_{status}": 1})
    finalized = _at(record, "finalized_at")
    if status == "FINALIZED" and finalized:
        _add(
            out,
            day_key(finalized),
            row,
            {
                "inv_fin": 1,
                f"inv_fin_{record['payment_status']}": 1,
                "invoiced": record.get("total") or 0,
                "subtotal": record.get("subtotal") or record.get("total") or 0,
                "discounts": record.get("total_discount") or 0,
                "credits": record.get("total_prepaid_credits_applied") or 0,
                "taxes": record.get("total_tax") or 0,
                "paid": record.get("amount_paid") or 0,
                "outstanding": record.get("amount_remaining") or 0,
            },
        )


def _payment(record: Mapping[str, Any], out: Buckets) -> None:
    row = str(record["currency"])
    status = record.get("payment_status")
    succeeded = _at(record, "succeeded_at")
    failed = _at(record, "failed_at")
    if status in COLLECTED and succeeded:
        _add(
            out,
            day_key(succeeded),
            row,
            {
                "pay_ok": 1,
                "collected": record.get("amount") or 0,
                "refunded": record.get("refunded_amount") or 0,
                "disputed": record.get("disputed_amount") or 0,
            },
        )
    elif status == "FAILED" and failed:
        _add(out, day_key(failed), row, {"pay_failed": 1})


def _hierarchy(out: Buckets, at: datetime, row: str, figures: Mapping[str, Any]) -> None:
    _add(out, day_key(at), row, figures)
    _add(out, f"M#{at.strftime('%Y-%m')}", row, figures)
    _add(out, f"Y#{at.strftime('%Y')}", row, figures)


def _subscription(record: Mapping[str, Any], out: Buckets) -> None:
    row = str(record["currency"])
    created = _at(record, "created_at")
    if created:
        _add(out, day_key(created), row, {"sub_created": 1})
    began, ended = lifetime(record)
    _hierarchy(out, began, row, {"sub_began": 1})
    if ended is not None:
        _add(out, day_key(ended), row, {"sub_ended": 1, f"sub_eb_{began.strftime('%Y%m%d')}": 1})
        _hierarchy(out, max(ended, began), row, {"sub_gone": 1})


def _customer(record: Mapping[str, Any], out: Buckets) -> None:
    created = _at(record, "created_at")
    if created:
        _add(out, day_key(created), NO_CURRENCY, {"cust_created": 1})


CONTRIBUTORS = {"invoice": _invoice, "payment": _payment, "subscription": _subscription, "customer": _customer}


def contributions(kind: str, record: Mapping[str, Any] | None) -> Buckets:
    out: Buckets = {}
    if record is not None and kind in CONTRIBUTORS:
        CONTRIBUTORS[kind](record, out)
    return out


def delta(kind: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> Buckets:
    """What the buckets move by when ``before`` becomes ``after`` (figures that do not move are left out)."""
    out: Buckets = {}
    for sign, record in ((1, after), (-1, before)):
        for key, figures in contributions(kind, record).items():
            _add(out, *key, {name: sign * amount for name, amount in figures.items()})
    return {key: moved for key, figures in out.items() if (moved := {n: a for n, a in figures.items() if a})}


def days(kind: str, record: Mapping[str, Any] | None) -> set[str]:
    """The UTC days (``YYYY-MM-DD``) a record contributes to."""
    return {bucket[2:] for bucket, _ in contributions(kind, record) if bucket.startswith("D#")}
