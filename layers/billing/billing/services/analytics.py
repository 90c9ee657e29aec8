"""Usage analytics, read from the usage counters only (nothing written, no event scanned).

``POST /events/analytics`` (Flexprice ``getUsageAnalytics``): one customer's usage per metered feature over a
period, with a time series per window. The usage figures of ``GET /dashboard/summary`` (event volume by customer,
feature adoption, daily trend) and the CloudWatch usage dashboard's widget come from ``environment_usage`` here,
so all three agree with ``/events/usage`` and invoices: the same counters, exact to the millisecond at both ends
(``services.usage.compute``).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from billing.domain import metering as m
from billing.errors import InvalidOperation, ValidationFailed
from billing.schemas.events import GROUPS_KEPT, UsageAnalyticsQuery
from billing.scope import Scope
from billing.services import usage
from billing.store import catalog
from billing.timeutil import iso

MAX_FEATURES = 200
MAX_CUSTOMERS = 2000
EXPANDABLE = ("feature", "meter")


@dataclass(frozen=True)
class Metered:
    feature: dict[str, Any]
    meter_record: dict[str, Any]
    meter: m.Meter


def metered_features(scope: Scope, feature_ids: Iterable[str] = ()) -> list[Metered]:
    """Published features with a meter (the ones asked for, when ``feature_ids`` is given), oldest first."""
    wanted = set(feature_ids)
    features = [
        f
        for f in reversed(catalog.features().list(scope))
        if f.get("meter_id") and f.get("status", "published") == "published" and (not wanted or f["id"] in wanted)
    ]
    if wanted - {f["id"] for f in features}:
        missing = sorted(wanted - {f["id"] for f in features})
        raise ValidationFailed(
            f"invalid request: feature_ids: {missing[0]} is not a published metered feature",
            {"errors": [{"field": "feature_ids", "message": f"unknown or unmetered features: {missing}"}]},
        )
    features = features[:MAX_FEATURES]
    meters = catalog.meters().get_many(scope, [str(f["meter_id"]) for f in features])
    return [
        Metered(f, meters[f["meter_id"]], m.Meter.from_record(meters[f["meter_id"]]))
        for f in features
        if f["meter_id"] in meters
    ]


def _refuse_unkept(request: UsageAnalyticsQuery) -> None:
    """The counters keep usage per customer and meter; other dimensions would need the events themselves."""
    for group in request.group_by:
        if group not in GROUPS_KEPT:
            raise InvalidOperation(
                f"group_by {group!r} is not available: usage is kept per customer and feature (group_by "
                "'feature_id'); for a property, create a meter with that filter",
                {"field": "group_by"},
            )
    if request.sources:
        raise InvalidOperation("usage is not kept per source; omit sources", {"field": "sources"})
    if any(request.property_filters.values()):
        raise InvalidOperation(
            "usage is kept per meter; create a meter with these filters (its history is back-filled)",
            {"field": "property_filters"},
        )
    for name in request.expand:
        if name not in EXPANDABLE:
            raise InvalidOperation(f"expand {name!r} is not available; use {list(EXPANDABLE)}", {"field": "expand"})


def _text(value: Any) -> str:
    return format(usage.number_of(value), "f")


def analytics(scope: Scope, request: UsageAnalyticsQuery, now: datetime) -> dict[str, Any]:
    """``GetUsageAnalyticsResponse`` for one customer: an item per metered feature."""
    _refuse_unkept(request)
    start, end = usage.period(request.start_time, request.end_time, now)
    usage.check_windows(request.window_size, start, end, None)
    customer = request.external_customer_id
    items = []
    for metered in metered_features(scope, request.feature_ids):
        got = usage.compute(scope, customer, metered.meter, start, end, request.window_size)
        feature = metered.feature
        item: dict[str, Any] = {
            "feature_id": feature["id"],
            "name": feature.get("name", ""),
            "meter_id": metered.meter.id,
            "event_name": metered.meter.event_name,
            "aggregation_type": metered.meter.aggregation,
            "external_customer_id": customer,
            "total_usage": _text(got.value),
            "event_count": got.events,
            "points": [
                {"timestamp": iso(label), "usage": _text(value), "event_count": count}
                for (label, value), count in zip(got.windows, got.window_events, strict=True)
            ],
        }
        if request.window_size:
            item["window_size"] = request.window_size
        if feature.get("unit_singular"):
            item["unit"] = feature["unit_singular"]
            item["unit_plural"] = feature.get("unit_plural") or feature["unit_singular"]
        if "meter" in request.expand:
            item["meter"] = metered.meter_record
        if "feature" in request.expand:
            item["feature"] = feature
        items.append(item)
    return {"items": items}


# -- the environment's usage: dashboard summary and the CloudWatch widget ----------------------------------------
@dataclass
class EnvironmentUsage:
    events: int = 0
    by_customer: dict[str, int] = field(default_factory=dict)
    by_feature: dict[str, dict[str, Any]] = field(default_factory=dict)
    per_day: dict[datetime, int] = field(default_factory=dict)
    customers_read: int = 0
    truncated: bool = False


def environment_usage(scope: Scope, start: datetime, end: datetime) -> EnvironmentUsage:
    """Usage of every customer of the environment over ``[start, end)``, from the counters: events per customer
    (by event name, for the event names of metered features), per feature (events counted for its meter,
    customers with usage, total) and per UTC day. Cost: per customer, one usage read per feature and per event
    name; at most ``MAX_CUSTOMERS`` customers (newest first) are read (``truncated`` says so)."""
    out = EnvironmentUsage()
    metered = metered_features(scope)
    names = sorted({f.meter.event_name for f in metered})
    for f in metered:
        out.by_feature[f.feature["id"]] = {
            "feature_id": f.feature["id"],
            "name": f.feature.get("name", ""),
            "meter_id": f.meter.id,
            "event_name": f.meter.event_name,
            "aggregation_type": f.meter.aggregation,
            "events": 0,
            "customers": 0,
        }
    customers = [c for c in catalog.customers().list(scope) if c.get("external_id")]
    if len(customers) > MAX_CUSTOMERS:
        customers, out.truncated = customers[:MAX_CUSTOMERS], True
    if start >= end or not names:
        return out
    days = _day_span(start, end)
    for customer in customers:
        external = str(customer["external_id"])
        out.customers_read += 1
        total = 0
        for name in names:
            counted = usage.compute(
                scope, external, m.Meter(id="", event_name=name, aggregation=m.COUNT), start, end, days, by_name=True
            )
            total += counted.events
            for (label, _), count in zip(counted.windows, counted.window_events, strict=True):
                if count:
                    out.per_day[label] = out.per_day.get(label, 0) + count
        if total:
            out.by_customer[external] = total
            out.events += total
        for f in metered:
            got = usage.compute(scope, external, f.meter, start, end)
            if got.events:
                row = out.by_feature[f.feature["id"]]
                row["events"] += got.events
                row["customers"] += 1
    return out


def _day_span(start: datetime, end: datetime) -> str | None:
    """Daily series when the period holds at most 400 days (the dashboard's trend)."""
    return "DAY" if end - start <= timedelta(days=400) else None


def usage_summary(scope: Scope, start: datetime, end: datetime, top: int = 10) -> dict[str, Any]:
    """The ``usage`` block of ``GET /dashboard/summary``."""
    got = environment_usage(scope, start, end)
    ranked = sorted(got.by_customer.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return {
        "events": got.events,
        "active_customers": len(got.by_customer),
        "top_customers": [{"external_customer_id": c, "events": n} for c, n in ranked],
        "features": sorted(got.by_feature.values(), key=lambda f: (-f["events"], f["feature_id"])),
        "events_per_day": [{"date": iso(day)[:10], "events": n} for day, n in sorted(got.per_day.items())],
        "customers_read": got.customers_read,
        "truncated": got.truncated,
    }


def widget_html(scope: Scope, start: datetime, end: datetime) -> str:
    """The CloudWatch usage dashboard's custom widget: the summary's usage block as an HTML table."""
    got = usage_summary(scope, start, end)

    def esc(value: Any) -> str:
        return html.escape(str(value))

    rows = [
        f"<p>{esc(iso(start))} to {esc(iso(end))}: <b>{got['events']:,}</b> events from "
        f"<b>{got['active_customers']:,}</b> customers ({got['customers_read']:,} read"
        + (", list truncated" if got["truncated"] else "")
        + ")</p>",
        "<table><tr><th>Top customers</th><th>Events</th></tr>",
        *(f"<tr><td>{esc(c['external_customer_id'])}</td><td>{c['events']:,}</td></tr>" for c in got["top_customers"]),
        "</table><table><tr><th>Feature</th><th>Event</th><th>Events</th><th>Customers</th></tr>",
        *(
            f"<tr><td>{esc(f['name'])}</td><td>{esc(f['event_name'])}</td><td>{f['events']:,}</td>"
            f"<td>{f['customers']:,}</td></tr>"
            for f in got["features"]
        ),
        "</table><table><tr><th>Day (UTC)</th><th>Events</th></tr>",
        *(f"<tr><td>{esc(d['date'])}</td><td>{d['events']:,}</td></tr>" for d in got["events_per_day"]),
        "</table>",
    ]
    return "\n".join(rows)
