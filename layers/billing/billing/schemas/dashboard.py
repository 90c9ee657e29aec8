"""``GET /dashboard/summary``: the query (a period and an optional currency) and the rendered figures."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import field_validator, model_validator

from billing.domain.money import format_money, is_supported
from billing.errors import ValidationFailed
from billing.schemas.common import Edge, Timestamp
from billing.timeutil import iso

DEFAULT_SPAN = timedelta(days=30)
MAX_SPAN = timedelta(days=366)
RATE_QUANTUM = Decimal("0.0001")

RESPONSE_FIELDS = ("period", "currency", "revenue", "invoices", "payments", "subscriptions", "customers")


class DashboardQuery(Edge):
    """``start_time``/``end_time`` (RFC 3339; default: the 30 days ending now) and an optional currency filter."""

    start_time: Timestamp | None = None
    end_time: Timestamp | None = None
    currency: str | None = None

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not is_supported(value):
            raise ValueError("must be an ISO 4217 currency code such as 'usd'")
        return value.strip().lower()

    @model_validator(mode="after")
    def _order(self) -> DashboardQuery:
        if self.start_time and self.end_time:
            check_period(self.start_time, self.end_time)
        return self

    def period(self, now: datetime) -> tuple[datetime, datetime]:
        """The half-open period ``[start, end)`` asked for, defaults filled in from ``now``."""
        try:
            end = self.end_time or (now if self.start_time is None else min(now, self.start_time + MAX_SPAN))
            start = self.start_time or end - DEFAULT_SPAN
            check_period(start, end)
        except (ValueError, OverflowError) as err:  # OverflowError: a default beyond year 1 or 9999
            field = "query.start_time" if self.start_time else "query.end_time"
            raise ValidationFailed(
                f"invalid request: {field}: {err}", {"errors": [{"field": field, "message": str(err)}]}
            ) from None
        return start, end


def check_period(start: datetime, end: datetime) -> None:
    if start >= end:
        raise ValueError("start_time must be before end_time")
    if end - start > MAX_SPAN:
        raise ValueError(f"the period may span at most {MAX_SPAN.days} days")


def rate(part: int, whole: int) -> str | None:
    """``part / whole`` with four decimals; None when ``whole`` is zero (the rate is undefined)."""
    if whole == 0:
        return None
    return str((Decimal(part) / Decimal(whole)).quantize(RATE_QUANTUM, rounding=ROUND_HALF_UP))


def _revenue_out(currency: str, figures: dict[str, Any]) -> dict[str, Any]:
    return {
        "currency": currency,
        "invoiced_total": format_money(figures["invoiced"], currency),
        "paid_total": format_money(figures["paid"], currency),
        "outstanding_total": format_money(figures["outstanding"], currency),
        "invoice_count": figures["invoice_count"],
        "collected_total": format_money(figures["collected"], currency),
        "refunded_total": format_money(figures["refunded"], currency),
        "disputed_total": format_money(figures["disputed"], currency),
        "collected_net_total": format_money(figures["collected"] - figures["refunded"] - figures["disputed"], currency),
    }


def dashboard_out(summary: dict[str, Any]) -> dict[str, Any]:
    """The service's figures as the API shows them: money as decimal strings, rates with four decimals or null."""
    payments = summary["payments"]
    subs = summary["subscriptions"]
    return {
        "period": {"start_time": iso(summary["start"]), "end_time": iso(summary["end"])},
        "currency": summary["currency"],
        "revenue": [_revenue_out(c, summary["revenue"][c]) for c in sorted(summary["revenue"])],
        "invoices": {
            "created": summary["invoices"]["created"],
            "by_status": dict(summary["invoices"]["by_status"]),
            "finalized": summary["invoices"]["finalized"],
            "by_payment_status": dict(summary["invoices"]["by_payment_status"]),
        },
        "payments": {
            "succeeded": payments["succeeded"],
            "failed": payments["failed"],
            "success_rate": rate(payments["succeeded"], payments["succeeded"] + payments["failed"]),
        },
        "subscriptions": {
            "active_at_start": subs["active_at_start"],
            "active_at_end": subs["active_at_end"],
            "created": subs["created"],
            "cancelled": subs["cancelled"],
            "churned": subs["churned"],
            "churn_rate": rate(subs["churned"], subs["active_at_start"]),
        },
        "customers": {"created": summary["customers"]["created"]},
        "usage": summary["usage"],
    }
