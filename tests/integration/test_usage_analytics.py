"""Usage analytics from the counters: ``POST /events/analytics`` (Flexprice's ``getUsageAnalytics``) and the usage
block of ``GET /dashboard/summary``, checked against the raw events and against ``/events/usage/meter``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.domain import metering as m
from tests.integration.test_usage_queries import stamp
from tests.support.api import call
from tests.support.metering import bulk, number, usage

T0 = datetime(2026, 10, 3, 22, 0, 0, 500_000, tzinfo=UTC)  # a period starting mid-second, crossing midnight


def _feature(tenant, name: str, event: str, kind: str, field: str | None) -> dict:
    aggregation = {"type": kind, **({"field": field} if field else {})}
    res = call(
        "POST",
        "/api/v1/features",
        tenant=tenant,
        body={
            "name": name,
            "type": "metered",
            "unit_singular": "token",
            "unit_plural": "tokens",
            "meter": {"name": name, "event_name": event, "aggregation": aggregation, "reset_usage": "BILLING_PERIOD"},
        },
    )
    assert res.status == 201, res.text
    return dict(res.body)


@pytest.fixture
def world(tenant):
    tokens = _feature(tenant, "Tokens", "llm", "SUM", "tokens")
    calls = _feature(tenant, "Calls", "api_call", "COUNT", None)
    for external in ("c1", "c2", "c3"):
        res = call("POST", "/api/v1/customers", tenant=tenant, body={"external_id": external, "name": external})
        assert res.status == 201, res.text
    events = []
    for i in range(40):
        at = T0 + timedelta(minutes=i * 7, milliseconds=i * 1_237 - 20_000)
        events.append(("llm", "c1", at, str(i)))
        if i % 2:
            events.append(("api_call", "c1", at + timedelta(seconds=3), "0"))
        if i % 5 == 0:
            events.append(("api_call", "c2", at, "0"))
    body = [
        {
            "event_id": f"ev-{n}",
            "event_name": name,
            "external_customer_id": customer,
            "timestamp": stamp(at),
            "properties": {"tokens": tokens_},
        }
        for n, (name, customer, at, tokens_) in enumerate(events)
    ]
    assert bulk(tenant, body).status == 202
    return {"tokens": tokens, "calls": calls, "events": events}


def _inside(events, lo, hi, name=None, customer=None):
    return [e for e in events if lo <= e[2] < hi and (name is None or e[0] == name) and (customer in (None, e[1]))]


def test_analytics_per_feature_matches_the_events_and_usage_by_meter(tenant, world):
    start, end = T0, T0 + timedelta(hours=4, milliseconds=333)
    res = call(
        "POST",
        "/api/v1/events/analytics",
        tenant=tenant,
        body={
            "external_customer_id": "c1",
            "start_time": stamp(start),
            "end_time": stamp(end),
            "window_size": "HOUR",
            "group_by": ["feature_id"],
        },
    )
    assert res.status == 200, res.text
    items = {i["feature_id"]: i for i in res.body["items"]}
    assert set(items) == {world["tokens"]["id"], world["calls"]["id"]}
    llm = _inside(world["events"], start, end, "llm", "c1")
    tokens = items[world["tokens"]["id"]]
    assert tokens["event_count"] == len(llm) > 0
    assert Decimal(tokens["total_usage"]) == sum(Decimal(e[3]) for e in llm)
    assert tokens["aggregation_type"] == "SUM" and tokens["unit"] == "token" and tokens["window_size"] == "HOUR"
    by_meter = usage(tenant, tokens["meter_id"], "c1", stamp(start), stamp(end), window_size="HOUR").body
    assert [(p["timestamp"], number(p["usage"])) for p in tokens["points"]] == [
        (r["window_size"], number(r["value"])) for r in by_meter["results"]
    ]
    for point, (_, lo, hi) in zip(tokens["points"], m.windows("HOUR", start, end), strict=True):
        assert point["event_count"] == len(_inside(world["events"], lo, hi, "llm", "c1"))
    calls = items[world["calls"]["id"]]
    assert calls["event_count"] == len(_inside(world["events"], start, end, "api_call", "c1"))
    assert Decimal(calls["total_usage"]) == calls["event_count"]


def test_analytics_filters_by_feature_and_refuses_what_the_counters_do_not_keep(tenant, world):
    base = {
        "external_customer_id": "c2",
        "start_time": stamp(T0 - timedelta(days=1)),
        "end_time": stamp(T0 + timedelta(days=1)),
    }
    res = call("POST", "/api/v1/events/analytics", tenant=tenant, body={**base, "feature_ids": [world["calls"]["id"]]})
    assert res.status == 200, res.text
    (only,) = res.body["items"]
    assert only["feature_id"] == world["calls"]["id"] and only["event_count"] == 8 and only["points"] == []
    for extra, field in (
        ({"group_by": ["source"]}, "group_by"),
        ({"group_by": ["properties.model"]}, "group_by"),
        ({"sources": ["web"]}, "sources"),
        ({"property_filters": {"model": ["a"]}}, "property_filters"),
    ):
        bad = call("POST", "/api/v1/events/analytics", tenant=tenant, body={**base, **extra})
        assert bad.status == 400 and bad.body["code"] == "invalid_operation", bad.text
        assert bad.body["details"]["field"] == field
    missing = call("POST", "/api/v1/events/analytics", tenant=tenant, body={"start_time": base["start_time"]})
    assert missing.status == 400 and missing.body["code"] == "validation_error"
    unknown = call("POST", "/api/v1/events/analytics", tenant=tenant, body={**base, "feature_ids": ["feat_nope"]})
    assert unknown.status == 400, unknown.text


def test_dashboard_summary_usage_comes_from_the_same_counters(tenant, world):
    start, end = T0 + timedelta(minutes=30), T0 + timedelta(hours=3, seconds=1)
    res = call(
        "GET", "/api/v1/dashboard/summary", tenant=tenant, query={"start_time": stamp(start), "end_time": stamp(end)}
    )
    assert res.status == 200, res.text
    got = res.body["usage"]
    inside = _inside(world["events"], start, end)
    assert got["events"] == len(inside) and got["active_customers"] == 2 and got["customers_read"] == 3
    per_customer = {c: len([e for e in inside if e[1] == c]) for c in ("c1", "c2")}
    assert got["top_customers"] == [
        {"external_customer_id": c, "events": n} for c, n in sorted(per_customer.items(), key=lambda kv: -kv[1])
    ]
    features = {f["feature_id"]: f for f in got["features"]}
    assert features[world["tokens"]["id"]]["events"] == len([e for e in inside if e[0] == "llm"])
    assert features[world["tokens"]["id"]]["customers"] == 1
    assert features[world["calls"]["id"]]["customers"] == 2
    days = {}
    for e in inside:
        days[e[2].strftime("%Y-%m-%d")] = days.get(e[2].strftime("%Y-%m-%d"), 0) + 1
    assert got["events_per_day"] == [{"date": d, "events": n} for d, n in sorted(days.items())]
    assert len(got["events_per_day"]) == 2  # the period crosses midnight


def test_the_cloudwatch_widget_shows_the_summary_figures(tenant, world):
    from pathlib import Path

    from devstack.events import LambdaContext
    from devstack.loader import load_handler

    start, end = T0 + timedelta(minutes=30), T0 + timedelta(hours=3, seconds=1)
    summary = call(
        "GET", "/api/v1/dashboard/summary", tenant=tenant, query={"start_time": stamp(start), "end_time": stamp(end)}
    ).body["usage"]
    handler = load_handler(Path("functions/dashboard_usage_widget/app.py").resolve())
    event = {
        "widgetContext": {
            "timeRange": {"start": m.epoch_ms(start), "end": m.epoch_ms(end)},
            "params": {"tenant_id": tenant[0], "environment_id": tenant[1]},
        }
    }
    page = handler(event, LambdaContext("widget"))
    assert f"<b>{summary['events']:,}</b> events from <b>2</b> customers" in page
    for row in summary["events_per_day"]:
        assert f"<tr><td>{row['date']}</td><td>{row['events']:,}</td></tr>" in page
    assert "Set the template parameters" in handler({"widgetContext": {}}, LambdaContext("widget"))
