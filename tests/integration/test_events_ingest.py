"""Event ingestion through its functions: exactly-once, validation, tenancy, raw event reads."""

from __future__ import annotations

import io
import json
import logging
import threading
from datetime import UTC, datetime, timedelta

from billing.observability import logger
from tests.support.api import call
from tests.support.metering import bulk, create_meter, ingest, number, usage

MONTH = ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")


def event(i: int | str, customer: str = "c1", **fields) -> dict:
    body = {
        "event_id": f"ev-{i}",
        "event_name": "api_call",
        "external_customer_id": customer,
        "timestamp": "2026-10-10T10:10:10Z",
        "properties": {"tokens": "10"},
    }
    body.update(fields)
    return body


def total(tenant, meter, customer: str = "c1", **extra):
    res = usage(tenant, meter["id"], customer, *MONTH, **extra)
    assert res.status == 200, res.text
    return number(res.body["value"])


def stored_events(tenant, customer: str = "c1") -> list[dict]:
    res = call(
        "POST",
        "/api/v1/events/query",
        tenant=tenant,
        body={"external_customer_id": customer, "start_time": "2000-01-01T00:00:00Z", "page_size": 1000},
    )
    assert res.status == 200, res.text
    return res.body["events"]


def test_single_event_is_202_with_its_id_and_a_generated_id_when_absent(tenant):
    meter = create_meter(tenant, "api_call", "SUM", "tokens")
    res = ingest(tenant, event(1))
    assert res.status == 202, res.text
    assert res.body == {"message": "Event accepted for processing", "event_id": "ev-1"}
    generated = ingest(tenant, {k: v for k, v in event(2).items() if k != "event_id"})
    assert generated.status == 202
    assert generated.body["event_id"].startswith("event_") and len(generated.body["event_id"]) == 32
    looked = call("GET", "/api/v1/events/lookup", tenant=tenant, query={"id": generated.body["event_id"]})
    assert looked.status == 200 and looked.body["event"]["properties"] == {"tokens": "10"}
    assert looked.body["counted_for_meters"] == [meter["id"]]
    assert total(tenant, meter) == 20


def test_resent_event_is_accepted_and_counted_once_first_payload_wins(tenant):
    meter = create_meter(tenant, "api_call", "SUM", "tokens")
    assert ingest(tenant, event(1)).status == 202
    again = ingest(tenant, event(1, properties={"tokens": "999"}, timestamp="2026-10-11T00:00:00Z"))
    assert again.status == 202 and again.body["event_id"] == "ev-1"
    assert total(tenant, meter) == 10
    looked = call("GET", "/api/v1/events/lookup", tenant=tenant, query={"id": "ev-1"}).body["event"]
    assert looked["properties"] == {"tokens": "10"} and looked["timestamp"] == "2026-10-10T10:10:10.000Z"


def test_duplicates_inside_one_bulk_and_across_bulks_count_once(tenant):
    meter = create_meter(tenant, "api_call", "COUNT")
    sums = create_meter(tenant, "api_call", "SUM", "tokens")
    first = [event(i, customer=f"c{i % 3}") for i in range(30)] + [event(5, customer="c2"), event(7, customer="c1")]
    assert bulk(tenant, first).status == 202
    second = [event(i, customer=f"c{i % 3}") for i in range(20, 40)]
    assert bulk(tenant, second).status == 202
    counts = {c: total(tenant, meter, c) for c in ("c0", "c1", "c2")}
    assert sum(counts.values()) == 40
    assert counts == {"c0": 14, "c1": 13, "c2": 13}
    assert sum(total(tenant, sums, c) for c in ("c0", "c1", "c2")) == 400


def test_concurrent_duplicates_from_threads_count_exactly_once(tenant):
    meter = create_meter(tenant, "api_call", "SUM", "tokens")
    maximum = create_meter(tenant, "api_call", "MAX", "tokens")
    batches = [[event(i, properties={"tokens": str(i)}) for i in range(start, start + 40)] for start in (0, 20, 10)]
    errors: list[str] = []
    barrier = threading.Barrier(9)

    def send(batch: list[dict]) -> None:
        barrier.wait()
        for _ in range(2):
            res = bulk(tenant, batch)
            if res.status != 202:
                errors.append(res.text)
        for item in batch[:5]:
            res = ingest(tenant, item)
            if res.status != 202:
                errors.append(res.text)

    threads = [threading.Thread(target=send, args=(batches[i % 3],)) for i in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert total(tenant, meter) == sum(range(60))
    assert total(tenant, maximum) == 59
    assert len(stored_events(tenant)) == 60


def test_bulk_validation_is_all_or_nothing_and_names_index_and_field(tenant):
    create_meter(tenant, "api_call", "SUM", "tokens")
    future = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    cases = [
        ([event(0), {"event_name": "api_call"}], "events.1.external_customer_id"),
        ([event(0), event(1), event(2, timestamp="yesterday")], "events.2.timestamp"),
        ([event(0), event(1, timestamp=future)], "events.1.timestamp"),
        ([event(0), event(1, properties={"other": "1"})], "events.1.properties.tokens"),
        ([event(0), event(1, properties={"tokens": "ten"})], "events.1.properties.tokens"),
        ([event(0), event(1, properties="tokens=1")], "events.1.properties"),
        ([event(0), event(1, event_name="")], "events.1.event_name"),
        ([event(0), event(1, event_id="x" * 300)], "events.1.event_id"),
    ]
    for events, field in cases:
        res = bulk(tenant, events)
        assert res.status == 400, (field, res.text)
        assert res.body["code"] == "validation_error"
        assert field in res.body["message"], (field, res.body)
        assert res.body["details"]["errors"][0]["field"] == field
    assert stored_events(tenant) == []
    for body in ({"events": []}, {"events": [event(i) for i in range(1001)]}, {"events": "x"}, {}):
        res = call("POST", "/api/v1/events/bulk", tenant=tenant, body=body)
        assert res.status == 400 and res.body["details"]["errors"][0]["field"].startswith("events"), res.text
    for raw in (b"not json", b"[1, 2]", b""):
        assert call("POST", "/api/v1/events/bulk", tenant=tenant, raw_body=raw).status == 400
    assert stored_events(tenant) == []


def test_single_event_bad_inputs_are_400_naming_the_field(tenant):
    create_meter(tenant, "api_call", "AVG", "latency")
    cases = [
        ({"external_customer_id": "c1"}, "event_name"),
        (event(1, properties={"latency": "fast"}), "properties.latency"),
        (event(1, properties={"latency": 1.5e400}), "body"),  # Infinity is not JSON
        (event(1, timestamp=(datetime.now(UTC) + timedelta(minutes=6)).isoformat()), "timestamp"),
        (event(1, external_customer_id=""), "external_customer_id"),
    ]
    for body, field in cases:
        res = ingest(tenant, body)
        assert res.status == 400, (field, res.text)
        assert res.body["details"]["errors"][0]["field"] == field, res.body
    assert stored_events(tenant) == []
    ok = ingest(
        tenant, event(1, timestamp=(datetime.now(UTC) + timedelta(minutes=4)).isoformat(), properties={"latency": 12})
    )
    assert ok.status == 202


def test_events_of_unknown_customers_are_kept_and_show_once_the_customer_exists(tenant):
    meter = create_meter(tenant, "api_call", "COUNT")
    assert bulk(tenant, [event(i, customer="future-co") for i in range(3)]).status == 202
    created = call("POST", "/api/v1/customers", tenant=tenant, body={"external_id": "future-co", "name": "Future"})
    assert created.status == 201
    res = call(
        "POST",
        "/api/v1/events/usage/meter",
        tenant=tenant,
        body={"meter_id": meter["id"], "customer_id": created.body["id"], "start_time": MONTH[0], "end_time": MONTH[1]},
    )
    assert res.status == 200 and res.body["value"] == 3


def test_late_events_count_in_their_own_bucket(tenant):
    meter = create_meter(tenant, "api_call", "SUM", "tokens")
    assert ingest(tenant, event(1, timestamp="2026-10-20T12:00:00Z")).status == 202
    assert ingest(tenant, event(2, timestamp="2026-10-02T08:30:00Z", properties={"tokens": "5"})).status == 202
    res = usage(tenant, meter["id"], "c1", *MONTH, window_size="DAY")
    by_day = {r["window_size"]: r["value"] for r in res.body["results"] if r["value"]}
    assert by_day == {"2026-10-02T00:00:00Z": 5, "2026-10-20T00:00:00Z": 10}


def test_meter_filters_select_events(tenant):
    eu = create_meter(tenant, "api_call", "SUM", "tokens", filters={"region": ["eu", "uk"]})
    everything = create_meter(tenant, "api_call", "SUM", "tokens")
    events = [
        event(1, properties={"tokens": "1", "region": "eu"}),
        event(2, properties={"tokens": "2", "region": "us"}),
        event(3, properties={"tokens": "4", "region": "uk"}),
        event(4, properties={"tokens": "8"}),
    ]
    assert bulk(tenant, events).status == 202
    assert total(tenant, eu) == 5
    assert total(tenant, everything) == 15
    # a query may repeat the meter's filters, not narrow them (the counters hold what the meter selects)
    assert total(tenant, eu, filters={"region": ["eu", "uk"]}) == 5
    narrowed = usage(tenant, eu["id"], "c1", *MONTH, filters={"region": ["eu"]})
    assert narrowed.status == 400 and narrowed.body["code"] == "invalid_operation"


def test_tenants_never_see_or_dedupe_each_others_events(tenant, other_tenant):
    mine = create_meter(tenant, "api_call", "COUNT")
    theirs = create_meter(other_tenant, "api_call", "COUNT")
    assert ingest(tenant, event(1)).status == 202
    assert call("GET", "/api/v1/events/lookup", tenant=other_tenant, query={"id": "ev-1"}).status == 404
    assert stored_events(other_tenant) == []
    assert total(other_tenant, theirs) == 0
    assert usage(other_tenant, mine["id"], "c1", *MONTH).status == 404
    assert ingest(other_tenant, event(1)).status == 202
    assert total(other_tenant, theirs) == 1 and total(tenant, mine) == 1


def test_raw_event_query_filters_and_pages_by_cursor(tenant):
    events = [
        event(
            i,
            customer="c1" if i % 2 else "c2",
            timestamp=f"2026-10-{1 + i:02d}T00:00:00Z",
            properties={"tokens": str(i), "tier": "gold" if i % 3 == 0 else "basic"},
            source="sdk",
        )
        for i in range(12)
    ]
    assert bulk(tenant, events).status == 202
    body = {
        "external_customer_id": "c1",
        "start_time": "2026-09-01T00:00:00Z",
        "end_time": "2026-11-01T00:00:00Z",
        "page_size": 2,
        "order": "asc",
    }
    seen, cursor = [], None
    while True:
        res = call("POST", "/api/v1/events/query", tenant=tenant, body={**body, "iter_last_key": cursor})
        assert res.status == 200, res.text
        seen += [e["id"] for e in res.body["events"]]
        if not res.body["has_more"]:
            break
        cursor = res.body["iter_last_key"]
    assert seen == [f"ev-{i}" for i in range(1, 12, 2)]
    gold = call(
        "POST",
        "/api/v1/events/query",
        tenant=tenant,
        body={
            "event_name": "api_call",
            "start_time": "2026-09-01T00:00:00Z",
            "end_time": "2026-11-01T00:00:00Z",
            "property_filters": {"tier": ["gold"]},
        },
    )
    assert [e["id"] for e in gold.body["events"]] == ["ev-9", "ev-6", "ev-3", "ev-0"]
    assert gold.body["events"][0]["source"] == "sdk" and gold.body["events"][0]["external_customer_id"] == "c1"
    offset = call(
        "POST",
        "/api/v1/events/query",
        tenant=tenant,
        body={
            "event_name": "api_call",
            "start_time": "2026-09-01T00:00:00Z",
            "end_time": "2026-10-05T00:00:00Z",
            "offset": 1,
            "page_size": 2,
        },
    )
    assert [e["id"] for e in offset.body["events"]] == ["ev-2", "ev-1"]
    unindexed = call("POST", "/api/v1/events/query", tenant=tenant, body={"source": "sdk"})
    assert unindexed.status == 400
    assert call("GET", "/api/v1/events/lookup", tenant=tenant, query={"id": "nope"}).status == 404
    assert call("GET", "/api/v1/events/lookup", tenant=tenant).status == 400


def test_each_request_logs_new_events_per_customer_for_the_top_customers_rule(tenant):
    """The usage dashboard's Contributor Insights rule sums ``events`` of "events accepted" lines per customer."""
    create_meter(tenant, "api_call", "COUNT")
    batch = [event(i, customer=f"c{i % 2}") for i in range(5)] + [event(0, customer="c0")]
    # The lines exactly as the function writes them to its log group: the product logger's own JSON formatter.
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    try:
        assert bulk(tenant, batch).status == 202
        assert bulk(tenant, batch[:2]).status == 202  # a re-send adds nothing and logs nothing
    finally:
        logger.removeHandler(handler)
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    lines = [entry for entry in logged if entry.get("message") == "events accepted"]
    # The rule's keys and value, as it reads them from the JSON log line.
    assert sorted((e["tenant_id"], e["external_customer_id"], e["events"]) for e in lines) == [
        (tenant[0], "c0", 3),
        (tenant[0], "c1", 2),
    ]
