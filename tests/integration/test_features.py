"""Features through their functions, against the embedded DynamoDB."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from billing.scope import Scope
from billing.services.meters import meters_for_event
from billing.settings import reset_settings
from devstack import template as tpl
from devstack.events import LambdaContext
from devstack.loader import load_handler
from tests.support.api import call
from tests.support.aws import aws_client

ROOT = Path(__file__).resolve().parents[2]

FEATURE_FIELDS = {
    "id",
    "name",
    "lookup_key",
    "description",
    "type",
    "meter_id",
    "meter",
    "metadata",
    "unit_singular",
    "unit_plural",
    "tenant_id",
    "environment_id",
    "status",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
}


def meter(**overrides):
    return {
        "name": "Tokens",
        "event_name": "llm.completion",
        "aggregation": {"type": "SUM", "field": "tokens"},
        "filters": [{"key": "model", "values": ["gpt-4o", "o1"]}],
        "reset_usage": "BILLING_PERIOD",
        **overrides,
    }


def create(tenant, **fields):
    body = {"name": "LLM tokens", "type": "metered", "meter": meter(), **fields}
    return call("POST", "/api/v1/features", tenant=tenant, body=body)


def created(tenant, **fields):
    res = create(tenant, **fields)
    assert res.status == 201, res.text
    return res.body


def totals(tenant, status="published"):
    features = call("GET", "/api/v1/features", tenant=tenant, query={"status": status}).body
    meters = call("GET", "/api/v1/meters", tenant=tenant, query={"status": status}).body
    return features["pagination"]["total"], meters["pagination"]["total"]


def assert_validation_error(res, field):
    assert res.status == 400, res.text
    body = res.body
    assert body["code"] == "validation_error" and body["http_status_code"] == 400
    fields = [e["field"] for e in body["details"]["errors"]]
    assert field in fields, (field, body)
    assert field in body["message"] or fields[0] != field


# -- create ---------------------------------------------------------------------------------------------


def test_create_metered_with_inline_meter_returns_201_with_meter(tenant):
    res = create(
        tenant,
        lookup_key="llm-tokens",
        description="Tokens used by completions",
        unit_singular="token",
        unit_plural="tokens",
        metadata={"team": "ai"},
    )
    assert res.status == 201, res.text
    assert res.headers["Content-Type"] == "application/json"
    body = res.body
    assert set(body) == FEATURE_FIELDS
    assert body["id"].startswith("feat_") and len(body["id"]) == 31
    assert body["type"] == "metered" and body["status"] == "published"
    assert body["lookup_key"] == "llm-tokens"
    assert body["unit_singular"] == "token" and body["unit_plural"] == "tokens"
    assert body["metadata"] == {"team": "ai"}
    assert body["tenant_id"] == tenant[0] and body["environment_id"] == tenant[1]
    assert body["created_at"].endswith("Z") and body["created_by"] == "api"
    assert body["meter_id"] == body["meter"]["id"]
    assert body["meter"]["event_name"] == "llm.completion"
    assert body["meter"]["aggregation"] == {"type": "SUM", "field": "tokens", "multiplier": None}
    assert body["meter"]["filters"] == [{"key": "model", "values": ["gpt-4o", "o1"]}]
    assert body["meter"]["status"] == "published"
    assert call("GET", f"/api/v1/meters/{body['meter_id']}", tenant=tenant).body == body["meter"]


@pytest.mark.parametrize("kind", ["boolean", "static", "config"])
def test_create_non_metered_types(tenant, kind):
    res = call("POST", "/api/v1/features", tenant=tenant, body={"name": f"A {kind} feature", "type": kind})
    assert res.status == 201, res.text
    assert res.body["type"] == kind
    assert res.body["meter_id"] is None and res.body["meter"] is None
    assert totals(tenant) == (1, 0)


def test_create_metered_with_existing_meter_id_shares_the_meter(tenant):
    first = created(tenant)
    res = call(
        "POST",
        "/api/v1/features",
        tenant=tenant,
        body={"name": "Tokens again", "type": "metered", "meter_id": first["meter_id"]},
    )
    assert res.status == 201, res.text
    assert res.body["meter_id"] == first["meter_id"]
    assert res.body["meter"] == first["meter"]
    assert totals(tenant) == (2, 1)


def test_meter_id_must_name_an_active_meter_of_this_environment(tenant, other_tenant):
    body = {"name": "X", "type": "metered", "meter_id": "meter_01KAXS2E5Q3V8W9Y0Z1A2B3C4E"}
    res = call("POST", "/api/v1/features", tenant=tenant, body=body)
    assert res.status == 404 and res.body["code"] == "not_found"
    assert "meter_01KAXS2E5Q3V8W9Y0Z1A2B3C4E" in res.body["message"]

    foreign = created(other_tenant)
    res = call("POST", "/api/v1/features", tenant=tenant, body={**body, "meter_id": foreign["meter_id"]})
    assert res.status == 404 and res.body["code"] == "not_found"

    mine = created(tenant)
    assert call("DELETE", f"/api/v1/features/{mine['id']}", tenant=tenant).status == 200
    res = call("POST", "/api/v1/features", tenant=tenant, body={**body, "meter_id": mine["meter_id"]})
    assert res.status == 400 and res.body["code"] == "invalid_operation"
    assert "archived" in res.body["message"]
    assert totals(tenant) == (0, 0)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "X", "type": "metered"}, "meter"),
        ({"name": "X", "type": "metered", "meter_id": "meter_x", "meter": meter()}, "meter"),
        ({"name": "X", "type": "boolean", "meter": meter()}, "meter"),
        ({"name": "X", "type": "static", "meter_id": "meter_x"}, "meter_id"),
        ({"type": "boolean"}, "name"),
        ({"name": "", "type": "boolean"}, "name"),
        ({"name": "X"}, "type"),
        ({"name": "X", "type": "usage"}, "type"),
        ({"name": "X", "type": "METERED", "meter": meter()}, "type"),
        ({"name": "X", "type": "boolean", "unit_singular": "seat"}, "unit_plural"),
        ({"name": "X", "type": "boolean", "metadata": {"a": {"b": 1}}}, "metadata.a"),
        ({"name": "X", "type": "boolean", "metadata": {"a": 1}}, "metadata.a"),
        ({"name": 5, "type": "boolean"}, "name"),
        ({"name": "X", "type": "metered", "meter": "tokens"}, "meter"),
    ],
)
def test_feature_rules_are_400_naming_the_field_and_write_nothing(tenant, body, field):
    assert_validation_error(call("POST", "/api/v1/features", tenant=tenant, body=body), field)
    assert totals(tenant) == (0, 0)


# -- aggregation rules --------------------------------------------------------------------------------

ACCEPTED = [
    ({"type": "COUNT"}, {"type": "COUNT", "field": None, "multiplier": None}),
    ({"type": "COUNT", "field": "request_id"}, {"type": "COUNT", "field": "request_id", "multiplier": None}),
    ({"type": "COUNT", "field": ""}, {"type": "COUNT", "field": None, "multiplier": None}),
    ({"type": "SUM", "field": "tokens"}, {"type": "SUM", "field": "tokens", "multiplier": None}),
    ({"type": "AVG", "field": "latency"}, {"type": "AVG", "field": "latency", "multiplier": None}),
    ({"type": "MAX", "field": "seats"}, {"type": "MAX", "field": "seats", "multiplier": None}),
    ({"type": "LATEST", "field": "seats"}, {"type": "LATEST", "field": "seats", "multiplier": None}),
    (
        {"type": "COUNT_UNIQUE", "field": "user"},
        {"type": "COUNT_UNIQUE", "field": "user", "multiplier": None},
    ),
    ({"type": "WEIGHTED_SUM", "field": "gb"}, {"type": "WEIGHTED_SUM", "field": "gb", "multiplier": None}),
    (
        {"type": "SUM_WITH_MULTIPLIER", "field": "ms", "multiplier": "1000"},
        {"type": "SUM_WITH_MULTIPLIER", "field": "ms", "multiplier": "1000"},
    ),
    (
        {"type": "SUM_WITH_MULTIPLIER", "field": "ms", "multiplier": 1000},
        {"type": "SUM_WITH_MULTIPLIER", "field": "ms", "multiplier": "1000"},
    ),
    (
        {"type": "SUM_WITH_MULTIPLIER", "field": "ms", "multiplier": "0.0010"},
        {"type": "SUM_WITH_MULTIPLIER", "field": "ms", "multiplier": "0.001"},
    ),
    (
        {"type": "SUM_WITH_MULTIPLIER", "field": "ms", "multiplier": 2.5},
        {"type": "SUM_WITH_MULTIPLIER", "field": "ms", "multiplier": "2.5"},
    ),
    (
        {"type": "SUM_WITH_MULTIPLIER", "field": "ms", "multiplier": "1E+3"},
        {"type": "SUM_WITH_MULTIPLIER", "field": "ms", "multiplier": "1000"},
    ),
    (
        {"type": "SUM", "field": "tokens", "multiplier": None},
        {"type": "SUM", "field": "tokens", "multiplier": None},
    ),
]


@pytest.mark.parametrize(("aggregation", "expected"), ACCEPTED, ids=[str(a) for a, _ in ACCEPTED])
def test_aggregation_accepted(tenant, aggregation, expected):
    body = created(tenant, meter=meter(aggregation=aggregation))
    assert body["meter"]["aggregation"] == expected
    stored = call("GET", f"/api/v1/meters/{body['meter_id']}", tenant=tenant).body
    assert stored["aggregation"] == expected


REJECTED = [
    *[({"type": t}, "meter.aggregation.field") for t in ("SUM", "AVG", "MAX", "LATEST", "COUNT_UNIQUE")],
    ({"type": "WEIGHTED_SUM", "field": "  "}, "meter.aggregation.field"),
    ({"type": "SUM_WITH_MULTIPLIER", "multiplier": "10"}, "meter.aggregation.field"),
    ({"type": "SUM_WITH_MULTIPLIER", "field": "ms"}, "meter.aggregation.multiplier"),
    ({"type": "SUM_WITH_MULTIPLIER", "field": "ms", "multiplier": "0"}, "meter.aggregation.multiplier"),
    ({"type": "SUM_WITH_MULTIPLIER", "field": "ms", "multiplier": "-5"}, "meter.aggregation.multiplier"),
    ({"type": "SUM_WITH_MULTIPLIER", "field": "ms", "multiplier": "ten"}, "meter.aggregation.multiplier"),
    ({"type": "SUM_WITH_MULTIPLIER", "field": "ms", "multiplier": "NaN"}, "meter.aggregation.multiplier"),
    ({"type": "SUM_WITH_MULTIPLIER", "field": "ms", "multiplier": True}, "meter.aggregation.multiplier"),
    ({"type": "SUM_WITH_MULTIPLIER", "field": "ms", "multiplier": "1e400"}, "meter.aggregation.multiplier"),
    (
        {"type": "SUM_WITH_MULTIPLIER", "field": "ms", "multiplier": "1." + "1" * 40},
        "meter.aggregation.multiplier",
    ),
    ({"type": "SUM", "field": "tokens", "multiplier": "1000"}, "meter.aggregation.multiplier"),
    ({"type": "COUNT", "multiplier": 2}, "meter.aggregation.multiplier"),
    ({"type": "TOTAL", "field": "x"}, "meter.aggregation.type"),
    ({"type": "sum", "field": "x"}, "meter.aggregation.type"),
    ({"field": "x"}, "meter.aggregation.type"),
    ({"type": "SUM", "field": 7}, "meter.aggregation.field"),
]


@pytest.mark.parametrize(("aggregation", "field"), REJECTED, ids=[str(a) for a, _ in REJECTED])
def test_aggregation_rejected(tenant, aggregation, field):
    assert_validation_error(create(tenant, meter=meter(aggregation=aggregation)), field)
    assert totals(tenant) == (0, 0)


METER_REJECTED = [
    ({"event_name": ""}, "meter.event_name"),
    ({"event_name": "   "}, "meter.event_name"),
    ({"event_name": "e" * 256}, "meter.event_name"),
    ({"event_name": None}, "meter.event_name"),
    ({"event_name": 12}, "meter.event_name"),
    ({"aggregation": None}, "meter.aggregation"),
    ({"filters": [{"key": "", "values": ["a"]}]}, "meter.filters.0.key"),
    ({"filters": [{"values": ["a"]}]}, "meter.filters.0.key"),
    ({"filters": [{"key": "model", "values": []}]}, "meter.filters.0.values"),
    ({"filters": [{"key": "model"}]}, "meter.filters.0.values"),
    ({"filters": [{"key": "model", "values": ["gpt-4o", ""]}]}, "meter.filters.0.values.1"),
    ({"filters": [{"key": "model", "values": [4]}]}, "meter.filters.0.values.0"),
    ({"filters": [{"key": "model", "values": "gpt-4o"}]}, "meter.filters.0.values"),
    (
        {"filters": [{"key": "model", "values": ["a"]}, {"key": "model", "values": ["b"]}]},
        "meter.filters",
    ),
    ({"filters": {"model": ["a"]}}, "meter.filters"),
    ({"reset_usage": "MONTHLY"}, "meter.reset_usage"),
    ({"reset_usage": "never"}, "meter.reset_usage"),
    ({"name": ""}, "meter.name"),
]


@pytest.mark.parametrize(("overrides", "field"), METER_REJECTED, ids=[str(o) for o, _ in METER_REJECTED])
def test_meter_rules_rejected(tenant, overrides, field):
    assert_validation_error(create(tenant, meter=meter(**overrides)), field)
    assert totals(tenant) == (0, 0)


def test_meter_defaults_reset_usage_name_and_filters(tenant):
    inline = {"event_name": "api.call", "aggregation": {"type": "COUNT"}}
    body = created(tenant, name="API calls", meter=inline)
    assert body["meter"]["reset_usage"] == "BILLING_PERIOD"
    assert body["meter"]["name"] == "API calls"
    assert body["meter"]["filters"] == []
    never = created(tenant, name="Storage", meter={**inline, "reset_usage": "NEVER"})
    assert never["meter"]["reset_usage"] == "NEVER"


def test_flexprice_sdk_shaped_request_with_unknown_fields(tenant):
    """What Flexprice's SDK sends: multiplier as a string, plus fields this product does not evaluate."""
    body = {
        "name": "Compute seconds",
        "type": "metered",
        "lookup_key": "compute-seconds",
        "description": "",
        "unit_singular": "second",
        "unit_plural": "seconds",
        "metadata": {},
        "group_id": "",
        "alert_settings": {"alert_enabled": False},
        "reporting_unit": {"unit_singular": "hour", "unit_plural": "hours", "conversion_rate": 0.000277},
        "something_new": {"nested": [1, 2]},
        "meter": {
            "name": "Compute seconds",
            "event_name": "compute.run",
            "aggregation": {
                "type": "SUM_WITH_MULTIPLIER",
                "field": "duration_ms",
                "multiplier": "0.001",
                "bucket_size": "HOUR",
                "expression": "",
            },
            "filters": [{"key": "region", "values": ["eu-west-1"]}],
            "reset_usage": "BILLING_PERIOD",
        },
    }
    res = call("POST", "/api/v1/features", tenant=tenant, body=body)
    assert res.status == 201, res.text
    out = res.body
    assert set(out) == FEATURE_FIELDS
    assert out["meter"]["aggregation"] == {
        "type": "SUM_WITH_MULTIPLIER",
        "field": "duration_ms",
        "multiplier": "0.001",
    }
    assert isinstance(out["meter"]["aggregation"]["multiplier"], str)
    assert "something_new" not in out and "bucket_size" not in out["meter"]["aggregation"]
    assert out["metadata"] == {}


@pytest.fixture
def backfill_queue(aws_endpoint, monkeypatch):
    sqs = aws_client("sqs", aws_endpoint)
    url = sqs.create_queue(QueueName=f"backfill-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    monkeypatch.setenv("BACKFILL_QUEUE_URL", url)
    reset_settings()
    yield sqs, url
    monkeypatch.delenv("BACKFILL_QUEUE_URL")
    reset_settings()


def test_new_meter_requests_its_backfill_and_a_reused_meter_does_not(tenant, backfill_queue):
    sqs, url = backfill_queue
    feature = created(tenant)
    call(
        "POST",
        "/api/v1/features",
        tenant=tenant,
        body={"name": "Again", "type": "metered", "meter_id": feature["meter_id"]},
    )
    call("POST", "/api/v1/features", tenant=tenant, body={"name": "SSO", "type": "boolean"})
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    # the immediate request; the second one is delayed past ingestion's meter cache
    assert [json.loads(m["Body"]) for m in got] == [
        {"tenant_id": tenant[0], "environment_id": tenant[1], "meter_id": feature["meter_id"]}
    ]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert attrs["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"


# -- lookup keys and atomicity --------------------------------------------------------------------------


def test_duplicate_lookup_key_is_409_and_leaves_no_orphan_meter(tenant):
    first = created(tenant, lookup_key="tokens")
    res = create(tenant, lookup_key="tokens", name="Other", meter=meter(event_name="other.event"))
    assert res.status == 409, res.text
    assert res.body["code"] == "already_exists" and res.body["http_status_code"] == 409
    assert res.body["details"]["field"] == "lookup_key"
    assert totals(tenant) == (1, 1)
    assert meters_for_event(Scope(*tenant), "other.event") == []
    assert [m["id"] for m in meters_for_event(Scope(*tenant), "llm.completion")] == [first["meter_id"]]
    boolean = call(
        "POST",
        "/api/v1/features",
        tenant=tenant,
        body={"name": "B", "type": "boolean", "lookup_key": "tokens"},
    )
    assert boolean.status == 409


def test_lookup_key_is_unique_per_environment_only(tenant, other_tenant):
    assert create(tenant, lookup_key="tokens").status == 201
    assert create(other_tenant, lookup_key="tokens").status == 201
    # a blank lookup key is no key at all
    assert create(tenant, lookup_key="").status == 201
    assert create(tenant, lookup_key="  ").status == 201


# -- get, list, search ------------------------------------------------------------------------------------


def test_get_returns_feature_with_meter(tenant):
    feature = created(tenant, lookup_key="tokens")
    res = call("GET", f"/api/v1/features/{feature['id']}", tenant=tenant)
    assert res.status == 200
    assert res.body == feature
    boolean = call("POST", "/api/v1/features", tenant=tenant, body={"name": "SSO", "type": "boolean"}).body
    got = call("GET", f"/api/v1/features/{boolean['id']}", tenant=tenant).body
    assert got == boolean and got["meter"] is None


def test_get_unknown_is_404(tenant):
    for feature_id in ("feat_01KAXS2E5Q3V8W9Y0Z1A2B3C4D", "f" * 3000):
        res = call("GET", f"/api/v1/features/{feature_id}", tenant=tenant)
        assert res.status == 404 and res.body["code"] == "not_found"


def make_catalog(tenant):
    tokens = created(tenant, name="LLM tokens", lookup_key="tokens")
    calls = created(tenant, name="API calls", lookup_key="calls", meter=meter(event_name="api.call"))
    shared = call(
        "POST",
        "/api/v1/features",
        tenant=tenant,
        body={"name": "Tokens (enterprise)", "type": "metered", "meter_id": tokens["meter_id"]},
    ).body
    sso = call(
        "POST",
        "/api/v1/features",
        tenant=tenant,
        body={"name": "SSO", "type": "boolean", "lookup_key": "sso"},
    ).body
    seats = call("POST", "/api/v1/features", tenant=tenant, body={"name": "Seats", "type": "static"}).body
    return tokens, calls, shared, sso, seats


def ids(res):
    assert res.status == 200, res.text
    return [f["id"] for f in res.body["items"]]


def test_list_pagination_order_and_meter_expansion(tenant):
    tokens, calls, shared, sso, seats = make_catalog(tenant)
    res = call("GET", "/api/v1/features", tenant=tenant, query={"limit": 2, "offset": 1})
    assert ids(res) == [sso["id"], shared["id"]]
    assert res.body["pagination"] == {"total": 5, "limit": 2, "offset": 1}
    assert res.body["items"][1]["meter"] == tokens["meter"]
    assert res.body["items"][0]["meter"] is None
    res = call("GET", "/api/v1/features", tenant=tenant, query={"order": "asc"})
    assert ids(res) == [tokens["id"], calls["id"], shared["id"], sso["id"], seats["id"]]
    assert all(set(item) == FEATURE_FIELDS for item in res.body["items"])
    res = call("GET", "/api/v1/features", tenant=tenant, query={"offset": 10})
    assert ids(res) == [] and res.body["pagination"]["total"] == 5


def test_list_query_filters(tenant):
    tokens, calls, shared, sso, _seats = make_catalog(tenant)
    q = {"feature_ids": f"{calls['id']},{sso['id']}"}
    assert ids(call("GET", "/api/v1/features", tenant=tenant, query=q)) == [sso["id"], calls["id"]]
    assert ids(call("GET", "/api/v1/features", tenant=tenant, query={"lookup_key": "calls"})) == [calls["id"]]
    q = {"meter_ids": tokens["meter_id"], "order": "asc"}
    assert ids(call("GET", "/api/v1/features", tenant=tenant, query=q)) == [tokens["id"], shared["id"]]
    q = {"name_contains": "TOKENS"}
    assert ids(call("GET", "/api/v1/features", tenant=tenant, query=q)) == [shared["id"], tokens["id"]]


def test_search_body_filters(tenant):
    tokens, calls, shared, sso, seats = make_catalog(tenant)

    def search(**body):
        return ids(call("POST", "/api/v1/features/search", tenant=tenant, body=body))

    assert search(feature_ids=[tokens["id"], seats["id"]]) == [seats["id"], tokens["id"]]
    assert search(lookup_keys=["sso", "calls"], order="asc") == [calls["id"], sso["id"]]
    assert search(lookup_key="tokens") == [tokens["id"]]
    assert search(meter_ids=[calls["meter_id"]]) == [calls["id"]]
    assert search(name_contains="ens (ent") == [shared["id"]]
    assert search(limit=1, offset=4) == [tokens["id"]]
    assert search(filters=[], sort=[], expand="meters") == [
        seats["id"],
        sso["id"],
        shared["id"],
        calls["id"],
        tokens["id"],
    ]
    created_at = call("GET", f"/api/v1/features/{shared['id']}", tenant=tenant).body["created_at"]
    assert search(start_time=created_at, order="asc")[0] == shared["id"]
    assert search(end_time="2000-01-01T00:00:00Z") == []
    assert call("DELETE", f"/api/v1/features/{sso['id']}", tenant=tenant).status == 200
    assert search(status="archived") == [sso["id"]]
    assert sso["id"] not in search()
    res = call("POST", "/api/v1/features/search", tenant=tenant, body={"limit": 3})
    assert res.body["pagination"] == {"total": 4, "limit": 3, "offset": 0}


@pytest.mark.parametrize(
    "body",
    [
        {"limit": 0},
        {"limit": 1001},
        {"offset": -1},
        {"order": "sideways"},
        {"status": "active"},
        {"feature_ids": 5},
        {"start_time": "yesterday"},
        {"filters": [{"field": "name", "operator": "contains", "value": "x"}]},
    ],
)
def test_search_bad_filters_are_400(tenant, body):
    res = call("POST", "/api/v1/features/search", tenant=tenant, body=body)
    assert res.status == 400, (body, res.text)
    assert res.body["code"] == "validation_error"


def test_list_bad_query_is_400(tenant):
    for query in ({"limit": "x"}, {"limit": 0}, {"status": "weird"}, {"end_time": "soon"}):
        res = call("GET", "/api/v1/features", tenant=tenant, query=query)
        assert res.status == 400, query
        assert res.body["code"] == "validation_error"


# -- update -----------------------------------------------------------------------------------------------


def test_update_changes_descriptive_fields_only(tenant):
    feature = created(tenant, lookup_key="tokens", metadata={"a": "1"})
    body = {
        "name": "LLM tokens (all models)",
        "description": "Prompt and completion tokens",
        "metadata": {"b": "2"},
        "unit_singular": "token",
        "unit_plural": "tokens",
        "lookup_key": "ignored",
        "unknown": True,
    }
    res = call("PUT", f"/api/v1/features/{feature['id']}", tenant=tenant, body=body)
    assert res.status == 200, res.text
    out = res.body
    assert out["name"] == "LLM tokens (all models)"
    assert out["description"] == "Prompt and completion tokens"
    assert out["metadata"] == {"b": "2"}
    assert out["unit_singular"] == "token" and out["unit_plural"] == "tokens"
    assert out["lookup_key"] == "tokens"
    assert out["meter"] == feature["meter"] and out["type"] == "metered"
    assert out["created_at"] == feature["created_at"] and out["updated_at"] >= feature["updated_at"]
    assert call("GET", f"/api/v1/features/{feature['id']}", tenant=tenant).body == out
    # a partial update keeps everything else
    res = call("PUT", f"/api/v1/features/{feature['id']}", tenant=tenant, body={"description": "short"})
    assert res.body["name"] == "LLM tokens (all models)" and res.body["metadata"] == {"b": "2"}


def test_update_accepts_unchanged_type_meter_and_filters(tenant):
    feature = created(tenant)
    body = {
        "name": "Renamed",
        "type": "metered",
        "meter_id": feature["meter_id"],
        "filters": [{"key": "model", "values": ["gpt-4o", "o1"]}],
    }
    res = call("PUT", f"/api/v1/features/{feature['id']}", tenant=tenant, body=body)
    assert res.status == 200, res.text
    assert res.body["name"] == "Renamed"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "boolean"}, "type"),
        ({"meter_id": "meter_01KAXS2E5Q3V8W9Y0Z1A2B3C4E"}, "meter_id"),
        ({"meter": {"event_name": "other", "aggregation": {"type": "COUNT"}}}, "meter"),
        ({"filters": [{"key": "model", "values": ["gpt-4o", "o1", "o3"]}]}, "filters"),
        ({"unit_singular": "token"}, "unit_plural"),
    ],
)
def test_update_refuses_changes_to_type_meter_and_filters(tenant, body, field):
    feature = created(tenant)
    res = call("PUT", f"/api/v1/features/{feature['id']}", tenant=tenant, body={"name": "Changed", **body})
    assert res.status == 400, res.text
    assert res.body["code"] == "invalid_operation"
    assert res.body["details"]["field"] == field
    got = call("GET", f"/api/v1/features/{feature['id']}", tenant=tenant).body
    assert got == feature


@pytest.mark.parametrize(
    ("body", "raw", "field"),
    [
        (None, b"{not json", None),
        (None, b"[]", None),
        (None, b"", None),
        ({"name": ""}, None, "name"),
        ({"name": 12}, None, "name"),
        ({"metadata": ["a"]}, None, "metadata"),
        ({"type": "usage"}, None, "type"),
        ({"filters": [{"key": "", "values": ["a"]}]}, None, "filters.0.key"),
    ],
)
def test_update_bad_input_is_400_and_changes_nothing(tenant, body, raw, field):
    feature = created(tenant)
    res = call("PUT", f"/api/v1/features/{feature['id']}", tenant=tenant, body=body, raw_body=raw)
    if field:
        assert_validation_error(res, field)
    else:
        assert res.status == 400 and res.body["code"] == "validation_error"
    assert call("GET", f"/api/v1/features/{feature['id']}", tenant=tenant).body == feature


def test_update_unknown_or_archived_is_404(tenant):
    res = call("PUT", "/api/v1/features/feat_01KAXS2E5Q3V8W9Y0Z1A2B3C4D", tenant=tenant, body={"name": "x"})
    assert res.status == 404 and res.body["code"] == "not_found"
    feature = created(tenant)
    assert call("DELETE", f"/api/v1/features/{feature['id']}", tenant=tenant).status == 200
    res = call("PUT", f"/api/v1/features/{feature['id']}", tenant=tenant, body={"name": "x"})
    assert res.status == 404


# -- archive ----------------------------------------------------------------------------------------------


def test_delete_archives_frees_lookup_key_and_archives_the_meter(tenant):
    feature = created(tenant, lookup_key="tokens")
    res = call("DELETE", f"/api/v1/features/{feature['id']}", tenant=tenant)
    assert res.status == 200, res.text
    assert res.body == {"message": "feature deleted successfully"}
    got = call("GET", f"/api/v1/features/{feature['id']}", tenant=tenant).body
    assert got["status"] == "archived" and got["meter"]["status"] == "archived"
    assert totals(tenant) == (0, 0)
    assert totals(tenant, "archived") == (1, 1)
    assert meters_for_event(Scope(*tenant), "llm.completion") == []
    # idempotent, and the lookup key can be taken again
    assert call("DELETE", f"/api/v1/features/{feature['id']}", tenant=tenant).status == 200
    again = created(tenant, lookup_key="tokens")
    assert again["id"] != feature["id"] and again["meter_id"] != feature["meter_id"]


def test_shared_meter_stays_published_until_its_last_feature_is_archived(tenant):
    first = created(tenant)
    second = call(
        "POST",
        "/api/v1/features",
        tenant=tenant,
        body={"name": "Second", "type": "metered", "meter_id": first["meter_id"]},
    ).body
    assert call("DELETE", f"/api/v1/features/{first['id']}", tenant=tenant).status == 200
    assert call("GET", f"/api/v1/meters/{first['meter_id']}", tenant=tenant).body["status"] == "published"
    assert [m["id"] for m in meters_for_event(Scope(*tenant), "llm.completion")] == [first["meter_id"]]
    # a third feature can still join the meter
    third = call(
        "POST",
        "/api/v1/features",
        tenant=tenant,
        body={"name": "Third", "type": "metered", "meter_id": first["meter_id"]},
    )
    assert third.status == 201
    assert call("DELETE", f"/api/v1/features/{second['id']}", tenant=tenant).status == 200
    assert call("GET", f"/api/v1/meters/{first['meter_id']}", tenant=tenant).body["status"] == "published"
    assert call("DELETE", f"/api/v1/features/{third.body['id']}", tenant=tenant).status == 200
    assert call("GET", f"/api/v1/meters/{first['meter_id']}", tenant=tenant).body["status"] == "archived"
    assert meters_for_event(Scope(*tenant), "llm.completion") == []


def test_delete_non_metered_and_unknown(tenant):
    sso = call("POST", "/api/v1/features", tenant=tenant, body={"name": "SSO", "type": "boolean"}).body
    assert call("DELETE", f"/api/v1/features/{sso['id']}", tenant=tenant).status == 200
    assert call("GET", f"/api/v1/features/{sso['id']}", tenant=tenant).body["status"] == "archived"
    res = call("DELETE", "/api/v1/features/feat_01KAXS2E5Q3V8W9Y0Z1A2B3C4D", tenant=tenant)
    assert res.status == 404 and res.body["code"] == "not_found"


# -- bad input, auth, tenancy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[1, 2]", b'"feature"', b"", b"null", b"\xff\xfe"],
)
def test_create_malformed_body_is_400(tenant, raw):
    res = call("POST", "/api/v1/features", tenant=tenant, raw_body=raw)
    assert res.status == 400, res.text
    assert res.body["code"] == "validation_error" and res.body["message"]
    assert totals(tenant) == (0, 0)


def test_search_malformed_body_is_400(tenant):
    for raw in (b"{", b"[]", b""):
        res = call("POST", "/api/v1/features/search", tenant=tenant, raw_body=raw)
        assert res.status == 400 and res.body["code"] == "validation_error"


def test_oversized_body_is_413(tenant):
    body = {"name": "X", "type": "boolean", "description": "d" * 2_000_000}
    res = call("POST", "/api/v1/features", tenant=tenant, body=body)
    assert res.status == 413 and res.body["code"] == "payload_too_large"


def test_missing_key_is_401_on_every_endpoint(tenant):
    for method, path in [
        ("POST", "/api/v1/features"),
        ("GET", "/api/v1/features"),
        ("POST", "/api/v1/features/search"),
        ("GET", "/api/v1/features/feat_x"),
        ("PUT", "/api/v1/features/feat_x"),
        ("DELETE", "/api/v1/features/feat_x"),
        ("GET", "/api/v1/meters"),
        ("GET", "/api/v1/meters/meter_x"),
    ]:
        res = call(method, path, tenant=None, body={"name": "x", "type": "boolean"})
        assert res.status == 401, (method, path)
        assert res.body["code"] == "unauthorized"


def test_other_tenant_gets_404_everywhere_and_sees_nothing(tenant, other_tenant):
    feature = created(tenant, lookup_key="tokens")
    fid, mid = feature["id"], feature["meter_id"]
    assert call("GET", f"/api/v1/features/{fid}", tenant=other_tenant).status == 404
    assert call("PUT", f"/api/v1/features/{fid}", tenant=other_tenant, body={"name": "pwn"}).status == 404
    assert call("DELETE", f"/api/v1/features/{fid}", tenant=other_tenant).status == 404
    assert call("GET", f"/api/v1/meters/{mid}", tenant=other_tenant).status == 404
    body = {"name": "Steal", "type": "metered", "meter_id": mid}
    assert call("POST", "/api/v1/features", tenant=other_tenant, body=body).status == 404
    assert call("GET", "/api/v1/features", tenant=other_tenant).body["pagination"]["total"] == 0
    res = call("POST", "/api/v1/features/search", tenant=other_tenant, body={"feature_ids": [fid]})
    assert res.body["items"] == []
    assert call("GET", "/api/v1/meters", tenant=other_tenant).body["pagination"]["total"] == 0
    # nothing changed for the owner
    assert call("GET", f"/api/v1/features/{fid}", tenant=tenant).body == feature
    assert totals(tenant) == (1, 1)


# -- sample events --------------------------------------------------------------------------------------

AREA = {
    "features_create",
    "features_list",
    "features_search",
    "features_get",
    "features_update",
    "features_delete",
    "meters_list",
    "meters_get",
}
SAMPLES = sorted(p for p in (ROOT / "events" / "api").glob("*.json") if p.stem.split("__")[0] in AREA)


def test_every_function_of_this_area_is_declared_and_has_a_sample_event():
    declared = {fn.code_uri.name for fn in tpl.functions(tpl.load()).values()}
    assert declared >= AREA
    assert {p.stem.split("__")[0] for p in SAMPLES} == AREA


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_sample_event_runs_through_its_function(path, aws_endpoint):
    folder = path.stem.split("__")[0]
    [fn] = [f for f in tpl.functions(tpl.load()).values() if f.code_uri.name == folder]
    event = json.loads(path.read_text())
    assert event["requestContext"]["authorizer"]["lambda"] == {
        "tenant_id": "tenant_sample",
        "environment_id": "env_sample",
        "key_id": "key_sample",
    }
    method, route = event["routeKey"].split(" ", 1)
    assert any(
        ev["Properties"]["Method"].upper() == method and ev["Properties"]["Path"] == route for ev in fn.events.values()
    )
    result = load_handler(fn.module_path, fn.attribute)(event, LambdaContext(fn.logical_id))
    assert result["statusCode"] < 500, result
    assert result["headers"]["Content-Type"] == "application/json"
    body = json.loads(result["body"])
    if result["statusCode"] >= 400:
        assert {"code", "message", "http_status_code"} <= set(body)
    if folder == "features_create":
        # 409 when the sample's lookup key was already taken by an earlier run in this session
        assert result["statusCode"] in (201, 409), body
        if result["statusCode"] == 201:
            assert body["meter"]["event_name"] == "llm.completion"
