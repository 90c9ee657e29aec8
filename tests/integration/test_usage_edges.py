"""Usage is exact to the millisecond at both ends of ``[start, end)``, for any start instant: every aggregation,
usage by event name, reset NEVER, and invoices, subscription usage and previews of subscriptions that start or are
cancelled in the middle of a minute, each against a brute-force oracle over the raw events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.domain import metering as m
from tests.integration.test_usage_queries import KINDS, close, oracle, stamp
from tests.support.api import call
from tests.support.invoicing import invoices, make_queue, run_scheduler, setup, subscribe, usd_usage, use
from tests.support.metering import bulk, create_meter, number, usage

BASE = datetime(2026, 9, 30, 23, 50, tzinfo=UTC)  # ranges cross an hour, a day and a month boundary


@st.composite
def edges(draw: st.DrawFn) -> dict:
    """A range with random millisecond bounds and events crowded around both of its ends."""
    start = BASE + timedelta(milliseconds=draw(st.integers(0, 30 * 60_000)))
    length = draw(st.sampled_from([1, 999, 30_000, 59_999, 60_000, 61_001, 3 * 60_000 + 7, 47 * 60_000 + 123]))
    end = start + timedelta(milliseconds=length + draw(st.integers(0, 60_000)))
    events = []
    for i in range(draw(st.integers(1, 24))):
        near = draw(st.sampled_from([start, end, start + (end - start) / 2]))
        at = m.truncate_ms(near + timedelta(milliseconds=draw(st.integers(-70_000, 70_000))))
        events.append(
            {
                "event_id": f"e{i}",
                "at": at,
                "properties": {
                    "tokens": str(Decimal(draw(st.integers(-50, 5000))) / 10),
                    "model": draw(st.sampled_from(["a", "b", "c"])),
                },
            }
        )
    # Exact hits on the bounds and one millisecond either side of them.
    for j, at in enumerate([start, start - timedelta(milliseconds=1), end, end - timedelta(milliseconds=1)]):
        events.append({"event_id": f"b{j}", "at": at, "properties": {"tokens": str(j + 1), "model": "d"}})
    return {"start": start, "end": end, "events": events, "window": draw(st.sampled_from([None, "MINUTE", "HOUR"]))}


@settings(
    max_examples=10,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=edges())
def test_any_start_instant_matches_the_oracle_to_the_millisecond(aws_endpoint, case):
    tenant = (f"tenant_{uuid.uuid4().hex[:10]}", "env_edges")
    meters = {
        kind: create_meter(tenant, "llm", kind, field, multiplier="0.5" if kind == "SUM_WITH_MULTIPLIER" else None)
        for kind, field in KINDS
    }
    never = create_meter(tenant, "llm", "SUM", "tokens", reset_usage="NEVER")
    events = case["events"]
    body = [
        {
            "event_id": e["event_id"],
            "event_name": "llm",
            "external_customer_id": "c1",
            "timestamp": stamp(e["at"]),
            "properties": e["properties"],
        }
        for e in events
    ]
    assert bulk(tenant, body).status == 202
    start, end, window = case["start"], case["end"], case["window"]
    extra = {"window_size": window} if window else {}
    for kind, _ in KINDS:
        res = usage(tenant, meters[kind]["id"], "c1", stamp(start), stamp(end), **extra)
        assert res.status == 200, res.text
        assert close(res.body["value"], oracle(kind, events, start, end)), (kind, res.body["value"])
        if window:
            expected = m.windows(window, start, end)
            assert len(res.body["results"]) == len(expected)
            for got, (_, lo, hi) in zip(res.body["results"], expected, strict=True):
                assert close(got["value"], oracle(kind, events, lo, hi)), (kind, window, lo, hi)
    by_name = call(
        "POST",
        "/api/v1/events/usage",
        tenant=tenant,
        body={
            "event_name": "llm",
            "aggregation_type": "COUNT",
            "external_customer_id": "c1",
            "start_time": stamp(start),
            "end_time": stamp(end),
        },
    )
    assert by_name.status == 200, by_name.text
    assert number(by_name.body["value"]) == oracle("COUNT", events, start, end)
    res = usage(tenant, never["id"], "c1", stamp(start), stamp(end))
    assert number(res.body["value"]) == oracle("SUM", events, datetime(2000, 1, 1, tzinfo=UTC), end)


def test_edge_minutes_are_read_from_the_index_not_a_scan(tenant):
    meter = create_meter(tenant, "llm", "SUM", "tokens")
    at = datetime(2026, 10, 5, 12, 0, 30, tzinfo=UTC)
    events = [
        {
            "event_id": f"x{i}",
            "event_name": "llm",
            "external_customer_id": "c1",
            "timestamp": stamp(at + timedelta(seconds=i)),
            "properties": {"tokens": "1"},
        }
        for i in range(-40, 40)
    ]
    assert bulk(tenant, events).status == 202
    seen: list[str] = []
    from billing import wiring

    client = wiring.client("dynamodb")
    hook = lambda params, **_: seen.append(params.get("IndexName", "table"))  # noqa: E731
    client.meta.events.register("before-parameter-build.dynamodb.Query", hook)
    client.meta.events.register("before-parameter-build.dynamodb.Scan", lambda **_: seen.append("SCAN"))
    try:
        res = usage(tenant, meter["id"], "c1", stamp(at), stamp(at + timedelta(minutes=10, seconds=5)))
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb.Query", hook)
    assert number(res.body["value"]) == 40  # 12:00:30 .. 12:01:09 inclusive
    assert "SCAN" not in seen and seen.count("GSI2") == 2


# -- invoices, subscription usage and previews -----------------------------------------------------------------


@pytest.fixture
def queue(aws_endpoint):
    return make_queue(aws_endpoint)


def test_a_period_starting_mid_minute_bills_exactly_its_events(tenant, queue):
    ctx = setup(tenant, lambda mid: [usd_usage(mid, amount="1")])
    sub = subscribe(tenant, ctx, start_date="2026-03-10T08:15:30Z")
    assert (sub["current_period_start"], sub["current_period_end"]) == ("2026-03-10T08:15:30Z", "2026-04-10T08:15:30Z")
    use(tenant, ctx, 72, "2026-03-10T08:15:20Z")  # 10 s before the start: not this subscription's
    use(tenant, ctx, 100, "2026-03-10T08:15:30Z")  # at the start: billed
    use(tenant, ctx, 40, "2026-03-10T08:15:59.999Z")
    use(tenant, ctx, 60, "2026-03-20T00:00:00Z")
    use(tenant, ctx, 40, "2026-04-10T08:15:20Z")  # 10 s before the end: billed
    use(tenant, ctx, 500, "2026-04-10T08:15:30Z")  # at the end: the next period's
    usage_now = call(
        "POST",
        "/api/v1/subscriptions/usage",
        tenant=tenant,
        body={"subscription_id": sub["id"], "start_time": "2026-03-10T08:15:30Z", "end_time": "2026-04-10T08:15:30Z"},
    )
    assert usage_now.status == 200, usage_now.text
    (charge,) = usage_now.body["charges"]
    assert number(charge["quantity"]) == 240
    preview = call("POST", "/api/v1/invoices/preview", tenant=tenant, body={"subscription_id": sub["id"]})
    assert preview.status == 200, preview.text
    assert run_scheduler(queue, datetime(2026, 4, 10, 10, 0, tzinfo=UTC), tenant) == 1
    (inv,) = [i for i in invoices(tenant) if i["billing_reason"] == "SUBSCRIPTION_CYCLE"]
    line = next(li for li in inv["line_items"] if li["price_type"] == "USAGE")
    assert number(line["quantity"]) == 240 and line["amount"] == "240.00"


def test_preview_counts_up_to_now_to_the_millisecond(tenant):
    ctx = setup(tenant, lambda mid: [usd_usage(mid, amount="1")])
    start = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0, second=45)
    sub = subscribe(tenant, ctx, start_date=start.isoformat())
    use(tenant, ctx, 7, stamp(start - timedelta(seconds=1)))
    use(tenant, ctx, 5, stamp(start))
    use(tenant, ctx, 3, stamp(start + timedelta(seconds=14, milliseconds=999)))
    preview = call("POST", "/api/v1/invoices/preview", tenant=tenant, body={"subscription_id": sub["id"]})
    assert preview.status == 200, preview.text
    line = next(li for li in preview.body["line_items"] if li["price_type"] == "USAGE")
    assert number(line["quantity"]) == 8


def test_a_cancellation_in_the_middle_of_a_minute_bills_up_to_the_instant(tenant, queue):
    ctx = setup(tenant, lambda mid: [usd_usage(mid, amount="1")])
    start = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0, second=17)
    sub = subscribe(tenant, ctx, start_date=start.isoformat())
    res = call(
        "POST", f"/api/v1/subscriptions/{sub['id']}/cancel", tenant=tenant, body={"cancellation_type": "immediate"}
    )
    assert res.status == 200, res.text
    cut = datetime.fromisoformat(res.body["effective_date"].replace("Z", "+00:00"))
    use(tenant, ctx, 11, stamp(start - timedelta(milliseconds=1)))  # before the start
    use(tenant, ctx, 13, stamp(start))
    use(tenant, ctx, 17, stamp(cut - timedelta(milliseconds=1)))  # last billed instant
    use(tenant, ctx, 19, stamp(cut))  # after the cut
    use(tenant, ctx, 23, stamp(cut + timedelta(seconds=2)))
    assert run_scheduler(queue, datetime.now(UTC) + timedelta(hours=2), tenant) == 1
    (final,) = [i for i in invoices(tenant) if i["billing_reason"] == "SUBSCRIPTION_CYCLE"]
    line = next(li for li in final["line_items"] if li["price_type"] == "USAGE")
    assert number(line["quantity"]) == 30 and final["period_end"] == res.body["effective_date"]
