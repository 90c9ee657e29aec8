"""Meters through their functions (created through features), the stored record usage metering reads, and
``meters_for_event``, against the embedded DynamoDB."""

from __future__ import annotations

from decimal import Decimal

from billing import wiring
from billing.scope import Scope
from billing.services.meters import meters_for_event
from tests.support.api import call

METER_FIELDS = {
    "id",
    "name",
    "event_name",
    "aggregation",
    "filters",
    "reset_usage",
    "status",
    "tenant_id",
    "environment_id",
    "created_at",
    "updated_at",
}


def feature_with_meter(tenant, event_name="llm.completion", name="Tokens", **meter):
    body = {
        "name": name,
        "type": "metered",
        "meter": {
            "name": f"{name} meter",
            "event_name": event_name,
            "aggregation": {"type": "SUM", "field": "tokens"},
            **meter,
        },
    }
    res = call("POST", "/api/v1/features", tenant=tenant, body=body)
    assert res.status == 201, res.text
    return res.body


def test_get_meter_returns_meter_response_shape(tenant):
    feature = feature_with_meter(
        tenant,
        aggregation={"type": "SUM_WITH_MULTIPLIER", "field": "seconds", "multiplier": "0.001"},
        filters=[{"key": "region", "values": ["eu", "us"]}],
        reset_usage="NEVER",
    )
    res = call("GET", f"/api/v1/meters/{feature['meter_id']}", tenant=tenant)
    assert res.status == 200, res.text
    meter = res.body
    assert set(meter) == METER_FIELDS
    assert meter["id"].startswith("meter_") and len(meter["id"]) == 32
    assert meter["name"] == "Tokens meter"
    assert meter["event_name"] == "llm.completion"
    assert meter["aggregation"] == {"type": "SUM_WITH_MULTIPLIER", "field": "seconds", "multiplier": "0.001"}
    assert meter["filters"] == [{"key": "region", "values": ["eu", "us"]}]
    assert meter["reset_usage"] == "NEVER"
    assert meter["status"] == "published"
    assert meter["tenant_id"] == tenant[0] and meter["environment_id"] == tenant[1]
    assert meter["created_at"].endswith("Z") and meter["updated_at"] == meter["created_at"]
    assert meter == feature["meter"]


def test_stored_record_is_the_shared_format(tenant):
    feature = feature_with_meter(
        tenant,
        aggregation={"type": "SUM_WITH_MULTIPLIER", "field": "tokens", "multiplier": 1000},
        filters=[{"key": "model", "values": ["gpt-4o", "o1"]}],
    )
    scope = Scope(*tenant)
    item = wiring.entities().get(f"{scope.prefix}#meter", feature["meter_id"])
    assert item is not None
    assert item["GSI1PK"] == f"{scope.prefix}#meter_event#llm.completion"
    assert item["GSI1SK"] == feature["meter_id"]
    record = {k: v for k, v in item.items() if k not in ("PK", "SK", "GSI1PK", "GSI1SK")}
    assert set(record) == {
        "id",
        "tenant_id",
        "environment_id",
        "name",
        "event_name",
        "aggregation",
        "filters",
        "reset_usage",
        "status",
        "created_at",
        "updated_at",
        "version",
    }
    assert record["aggregation"] == {
        "type": "SUM_WITH_MULTIPLIER",
        "field": "tokens",
        "multiplier": Decimal(1000),
    }
    assert isinstance(record["aggregation"]["multiplier"], Decimal)
    assert record["filters"] == [{"key": "model", "values": ["gpt-4o", "o1"]}]
    assert record["reset_usage"] == "BILLING_PERIOD"
    assert record["status"] == "published"
    assert record["version"] == 1


def test_count_meter_without_field_or_filters_stores_nones_and_empty_list(tenant):
    feature = feature_with_meter(tenant, aggregation={"type": "COUNT"})
    [record] = meters_for_event(Scope(*tenant), "llm.completion")
    assert record["id"] == feature["meter_id"]
    assert record["aggregation"] == {"type": "COUNT", "field": None, "multiplier": None}
    assert record["filters"] == []


def test_meters_for_event_returns_published_meters_of_that_event_in_scope(tenant, other_tenant):
    a = feature_with_meter(tenant, name="A")["meter_id"]
    b = feature_with_meter(tenant, name="B", aggregation={"type": "MAX", "field": "latency"})["meter_id"]
    feature_with_meter(tenant, name="C", event_name="api.call")
    archived = feature_with_meter(tenant, name="D")
    feature_with_meter(other_tenant, name="E")
    assert call("DELETE", f"/api/v1/features/{archived['id']}", tenant=tenant).status == 200

    found = meters_for_event(Scope(*tenant), "llm.completion")
    assert [m["id"] for m in found] == [a, b]
    assert all(m["tenant_id"] == tenant[0] and m["status"] == "published" for m in found)
    assert meters_for_event(Scope(*tenant), "no.such.event") == []
    assert meters_for_event(Scope(*tenant), "") == []
    assert meters_for_event(Scope(tenant[0], "env_other"), "llm.completion") == []


def test_list_meters_filters_and_pagination(tenant):
    ids = [feature_with_meter(tenant, name=f"F{i}", event_name=f"e{i % 2}")["meter_id"] for i in range(4)]
    res = call("GET", "/api/v1/meters", tenant=tenant, query={"limit": 2, "offset": 1})
    assert res.status == 200, res.text
    assert res.body["pagination"] == {"total": 4, "limit": 2, "offset": 1}
    assert [m["id"] for m in res.body["items"]] == [ids[2], ids[1]]
    res = call("GET", "/api/v1/meters", tenant=tenant, query={"event_name": "e1", "order": "asc"}).body
    assert [m["id"] for m in res["items"]] == [ids[1], ids[3]]
    res = call("GET", "/api/v1/meters", tenant=tenant, query={"meter_ids": f"{ids[0]},{ids[3]}"}).body
    assert [m["id"] for m in res["items"]] == [ids[3], ids[0]]
    assert all(set(m) == METER_FIELDS for m in res["items"])


def test_archived_meter_is_listed_by_status_only(tenant):
    feature = feature_with_meter(tenant)
    assert call("DELETE", f"/api/v1/features/{feature['id']}", tenant=tenant).status == 200
    assert call("GET", "/api/v1/meters", tenant=tenant).body["pagination"]["total"] == 0
    res = call("GET", "/api/v1/meters", tenant=tenant, query={"status": "archived"}).body
    assert [m["id"] for m in res["items"]] == [feature["meter_id"]]
    got = call("GET", f"/api/v1/meters/{feature['meter_id']}", tenant=tenant).body
    assert got["status"] == "archived"
    assert got["updated_at"] >= got["created_at"]


def test_unknown_meter_is_404_and_bad_queries_are_400(tenant):
    for meter_id in ("meter_01KAXS2E5Q3V8W9Y0Z1A2B3C4E", "x" * 2000):
        res = call("GET", f"/api/v1/meters/{meter_id}", tenant=tenant)
        assert res.status == 404, res.text
        assert res.body["code"] == "not_found" and res.body["http_status_code"] == 404
    for query in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"status": "live"}, {"order": "up"}):
        res = call("GET", "/api/v1/meters", tenant=tenant, query=query)
        assert res.status == 400, query
        assert res.body["code"] == "validation_error"


def test_other_tenant_sees_no_meters(tenant, other_tenant):
    feature = feature_with_meter(tenant)
    assert call("GET", f"/api/v1/meters/{feature['meter_id']}", tenant=other_tenant).status == 404
    assert call("GET", "/api/v1/meters", tenant=other_tenant).body["pagination"]["total"] == 0
    assert meters_for_event(Scope(*other_tenant), "llm.completion") == []
    assert call("GET", "/api/v1/meters", tenant=None).status == 401
