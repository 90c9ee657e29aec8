"""Usage queries through their functions: every aggregation and window against an oracle over the raw events,
reset NEVER, usage by event name, and the cost of a one-month query."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.domain import metering as m
from tests.support.api import call
from tests.support.metering import bulk, counting_reads, create_meter, number, usage

START = datetime(2026, 9, 28, tzinfo=UTC)
KINDS = [
    ("COUNT", None),
    ("SUM", "tokens"),
    ("AVG", "tokens"),
    ("MAX", "tokens"),
    ("LATEST", "tokens"),
    ("COUNT_UNIQUE", "model"),
    ("SUM_WITH_MULTIPLIER", "tokens"),
    ("WEIGHTED_SUM", "tokens"),
]


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def oracle(kind: str, events: list[dict], lo: datetime, hi: datetime) -> Decimal:
    inside = [e for e in events if lo <= e["at"] < hi]
    values = [Decimal(e["properties"]["tokens"]) for e in inside]
    with localcontext() as ctx:
        ctx.prec = 50
        if kind == "COUNT":
            return Decimal(len(inside))
        if kind == "SUM":
            return sum(values, Decimal(0))
        if kind == "SUM_WITH_MULTIPLIER":
            return sum(values, Decimal(0)) * Decimal("0.5")
        if kind == "AVG":
            return sum(values, Decimal(0)) / len(values) if values else Decimal(0)
        if kind == "MAX":
            return max(values, default=Decimal(0))
        if kind == "LATEST":
            last = max(inside, key=lambda e: (e["at"], e["event_id"]), default=None)
            return Decimal(last["properties"]["tokens"]) if last else Decimal(0)
        if kind == "COUNT_UNIQUE":
            return Decimal(len({e["properties"]["model"] for e in inside}))
        span = Decimal(m.epoch_ms(hi) - m.epoch_ms(lo))
        return sum(
            (v * (m.epoch_ms(hi) - m.epoch_ms(e["at"])) / span for v, e in zip(values, inside, strict=True)), Decimal(0)
        )


def close(got, expected: Decimal) -> bool:
    return abs(number(got) - expected) <= Decimal("1e-9") * max(Decimal(1), abs(expected))


@st.composite
def workload(draw: st.DrawFn) -> dict:
    n = draw(st.integers(min_value=1, max_value=60))
    events = []
    for i in range(n):
        at = START + timedelta(milliseconds=draw(st.integers(min_value=0, max_value=40 * 86_400_000)))
        events.append(
            {
                "event_id": f"e{i}-{draw(st.integers(0, 3))}",
                "at": at,
                "properties": {
                    "tokens": str(Decimal(draw(st.integers(-50, 5000))) / 10),
                    "model": draw(st.sampled_from(["a", "b", "c"])),
                },
            }
        )
    lo = draw(st.integers(min_value=0, max_value=40 * 24 * 60 - 1))
    hi = draw(st.integers(min_value=lo + 1, max_value=min(40 * 24 * 60, lo + 35 * 24 * 60)))
    return {
        "events": events,
        "start": START + timedelta(minutes=lo),
        "end": START + timedelta(minutes=hi),
        "window": draw(st.sampled_from(["MINUTE", "15MIN", "HOUR", "3HOUR", "12HOUR", "DAY", "WEEK", "MONTH", None])),
        "anchor": draw(st.sampled_from([None, datetime(2026, 1, 17, 6, 30, tzinfo=UTC)])),
    }


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(case=workload())
def test_every_aggregation_and_window_matches_the_oracle(aws_endpoint, case):
    tenant = (f"tenant_{uuid.uuid4().hex[:10]}", "env_oracle")
    meters = {
        kind: create_meter(tenant, "llm", kind, field, multiplier="0.5" if kind == "SUM_WITH_MULTIPLIER" else None)
        for kind, field in KINDS
    }
    unique = {}
    for e in case["events"]:
        unique.setdefault(e["event_id"], e)  # first write wins
    body = [
        {
            "event_id": e["event_id"],
            "event_name": "llm",
            "external_customer_id": "c1",
            "timestamp": stamp(e["at"]),
            "properties": e["properties"],
        }
        for e in case["events"]
    ]
    assert bulk(tenant, body).status == 202
    events = list(unique.values())
    window = case["window"]
    if window and m.count_windows(window, m.floor_minute(case["start"]), case["end"], case["anchor"]) > 1500:
        window = "DAY"
    for kind, _ in KINDS:
        extra = {"window_size": window} if window else {}
        if case["anchor"]:
            extra["billing_anchor"] = case["anchor"].isoformat()
        res = usage(tenant, meters[kind]["id"], "c1", case["start"].isoformat(), case["end"].isoformat(), **extra)
        assert res.status == 200, res.text
        assert res.body["type"] == kind and res.body["event_name"] == "llm"
        assert close(res.body["value"], oracle(kind, events, case["start"], case["end"])), kind
        if window:
            expected = m.windows(window, case["start"], case["end"], case["anchor"])
            assert len(res.body["results"]) == len(expected)
            for got, (label, lo, hi) in zip(res.body["results"], expected, strict=True):
                assert got["window_size"] == label.strftime("%Y-%m-%dT%H:%M:%SZ")
                assert close(got["value"], oracle(kind, events, lo, hi)), (kind, window, label)


def test_reset_never_includes_everything_before_the_range(tenant):
    never = create_meter(tenant, "storage", "SUM", "gb", reset_usage="NEVER")
    period = create_meter(tenant, "storage", "SUM", "gb")
    stamps = [
        "2025-03-01T00:00:00Z",
        "2026-08-31T23:59:59Z",
        "2026-10-01T03:00:00Z",
        "2026-10-15T00:00:00Z",
        "2026-10-20T00:00:00Z",
        "2026-11-02T00:00:00Z",
    ]
    body = [
        {
            "event_id": f"s{i}",
            "event_name": "storage",
            "external_customer_id": "c1",
            "timestamp": ts,
            "properties": {"gb": str(10**i)},
        }
        for i, ts in enumerate(stamps)
    ]
    assert bulk(tenant, body).status == 202
    rng = ("2026-10-15T00:00:00Z", "2026-11-01T00:00:00Z")
    assert usage(tenant, period["id"], "c1", *rng).body["value"] == 11000
    assert usage(tenant, never["id"], "c1", *rng).body["value"] == 11111
    daily = usage(tenant, never["id"], "c1", *rng, window_size="MONTH").body
    assert daily["value"] == 11111 and [r["value"] for r in daily["results"]] == [11000]


def test_usage_by_event_name(tenant):
    body = [
        {
            "event_id": f"u{i}",
            "event_name": "search",
            "external_customer_id": "c1",
            "timestamp": f"2026-10-0{1 + i % 3}T12:00:00Z",
            "properties": {"hits": str(i), "region": "eu"},
        }
        for i in range(9)
    ]
    assert bulk(tenant, body).status == 202
    query = {
        "event_name": "search",
        "external_customer_id": "c1",
        "start_time": "2026-10-01T00:00:00Z",
        "end_time": "2026-10-04T00:00:00Z",
    }
    counted = call(
        "POST", "/api/v1/events/usage", tenant=tenant, body={**query, "aggregation_type": "COUNT", "window_size": "DAY"}
    )
    assert counted.status == 200, counted.text
    assert counted.body["value"] == 9 and [r["value"] for r in counted.body["results"]] == [3, 3, 3]
    summed = call(
        "POST",
        "/api/v1/events/usage",
        tenant=tenant,
        body={**query, "aggregation_type": "SUM", "property_name": "hits"},
    )
    assert summed.status == 400 and summed.body["code"] == "invalid_operation"
    create_meter(tenant, "search", "SUM", "hits")
    # a meter created after the events: its history is filled by the back-fill job (tested separately)
    from billing.scope import Scope
    from billing.services import backfill

    meter_id = call("POST", "/api/v1/events/usage", tenant=tenant, body={**query, "aggregation_type": "COUNT"})
    assert meter_id.status == 200
    for record in backfill_candidates(tenant):
        backfill.run(backfill.message(Scope(*tenant), record))
    for kind, expected in (("SUM", 36), ("AVG", 4), ("SUM_WITH_MULTIPLIER", 72)):
        res = call(
            "POST",
            "/api/v1/events/usage",
            tenant=tenant,
            body={**query, "aggregation_type": kind, "property_name": "hits", "multiplier": "2"},
        )
        assert res.status == 200, res.text
        assert res.body["value"] == expected, kind
    missing = call("POST", "/api/v1/events/usage", tenant=tenant, body={**query, "aggregation_type": "MAX"})
    assert missing.status == 400 and "property_name" in missing.text


def backfill_candidates(tenant) -> list[str]:
    from billing.scope import Scope
    from billing.store import catalog

    scope = Scope(*tenant)
    return [r["id"] for r in catalog.meters().list(scope)]


def test_usage_query_bad_inputs(tenant):
    meter = create_meter(tenant, "api", "COUNT")
    base = {
        "meter_id": meter["id"],
        "external_customer_id": "c1",
        "start_time": "2026-10-01T00:00:00Z",
        "end_time": "2026-11-01T00:00:00Z",
    }
    cases = [
        ({**base, "window_size": "FORTNIGHT"}, "window_size"),
        ({**base, "start_time": "2026-11-02T00:00:00Z"}, "start_time"),
        ({**base, "start_time": "soon"}, "start_time"),
        ({k: v for k, v in base.items() if k != "external_customer_id"}, "body"),
        ({**base, "timezone": "Europe/Paris"}, "timezone"),
        ({**base, "window_size": "MINUTE", "start_time": "2020-01-01T00:00:00Z"}, "window_size"),
    ]
    for body, field in cases:
        res = call("POST", "/api/v1/events/usage/meter", tenant=tenant, body=body)
        assert res.status == 400, (field, res.text)
        assert res.body["details"]["errors"][0]["field"] == field, res.body
    assert (
        call("POST", "/api/v1/events/usage/meter", tenant=tenant, body={**base, "meter_id": "meter_missing"}).status
        == 404
    )


def test_one_month_query_reads_a_bounded_number_of_items_whatever_the_event_count(tenant):
    meter = create_meter(tenant, "api", "MAX", "n")
    lo, hi = datetime(2026, 10, 1, 7, 13, tzinfo=UTC), datetime(2026, 10, 31, 16, 47, tzinfo=UTC)
    buckets = m.cover(lo, hi)
    # first, one event in every bucket the query covers: from here on, more events cannot add items to read
    first = [at + timedelta(seconds=1) for _, at in buckets]
    rng = random.Random(7)
    month = datetime(2026, 10, 1, tzinfo=UTC)
    batches = [first] + [[month + timedelta(seconds=rng.randrange(31 * 86400)) for _ in range(600)] for _ in range(2)]
    reads, stored = [], 0
    for batch in batches:
        body = [
            {
                "event_id": f"r{stored + i}",
                "event_name": "api",
                "external_customer_id": "c1",
                "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "properties": {"n": str(stored + i)},
            }
            for i, at in enumerate(batch)
        ]
        stored += len(body)
        assert bulk(tenant, body).status == 202
        with counting_reads() as counter:
            res = usage(tenant, meter["id"], "c1", lo.isoformat(), hi.isoformat())
        assert res.status == 200 and res.body["value"] >= 0
        reads.append(counter.items)
    # the meter, then the counter and MAX items of each covering bucket (at most ~200 each for a month): flat
    assert len(buckets) <= 31 + 2 * 23 + 2 * 59
    assert reads == [1 + 2 * len(buckets)] * 3, (reads, len(buckets))
