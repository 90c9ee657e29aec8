"""Plans through their functions (inline prices included), against the embedded DynamoDB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from billing import wiring
from billing.ids import new_id
from billing.scope import Scope
from billing.store import catalog
from billing.timeutil import iso, utcnow
from devstack import template as tpl
from devstack.events import LambdaContext
from devstack.loader import load_handler
from tests.support.api import call

ROOT = Path(__file__).resolve().parents[2]
PLAN_FIELDS = {
    "id",
    "name",
    "lookup_key",
    "description",
    "display_order",
    "metadata",
    "tenant_id",
    "environment_id",
    "status",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
}
MISSING_PLAN = "plan_01KAXS2E5Q3V8W9Y0Z1A2B3C4D"


# -- helpers -------------------------------------------------------------------------------------------------


def make_meter(tenant, status="published"):
    """A meter record as the features endpoints store it."""
    now = iso(utcnow())
    record = {
        "id": new_id("meter"),
        "tenant_id": tenant[0],
        "environment_id": tenant[1],
        "name": "API calls",
        "event_name": "api.call",
        "aggregation": {"type": "COUNT"},
        "filters": [],
        "reset_usage": "BILLING_PERIOD",
        "status": status,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    catalog.meters().create(Scope(*tenant), record, indexes={})
    return record["id"]


def stored_items(tenant):
    """Every item of the tenant's environment, read straight from the table (tests only: a Scan)."""
    table = wiring.entities()
    kwargs = {
        "TableName": table.name,
        "FilterExpression": "begins_with(PK, :p)",
        "ExpressionAttributeValues": {":p": {"S": f"{tenant[0]}#{tenant[1]}#"}},
    }
    items = []
    while True:
        out = table.client.scan(**kwargs)
        items.extend(out.get("Items", []))
        if "LastEvaluatedKey" not in out:
            return sorted((i["PK"]["S"], i["SK"]["S"]) for i in items)
        kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]


def create(tenant, **fields):
    return call("POST", "/api/v1/plans", tenant=tenant, body={"name": "Growth", **fields})


def flat_fee(**fields):
    return {
        "type": "FIXED",
        "billing_model": "FLAT_FEE",
        "amount": "49.00",
        "currency": "usd",
        "billing_period": "MONTHLY",
        "invoice_cadence": "ADVANCE",
        **fields,
    }


def tiered_usage(meter_id, **fields):
    return {
        "type": "USAGE",
        "billing_model": "TIERED",
        "tier_mode": "SLAB",
        "tiers": [
            {"up_to": 1000, "unit_amount": "0"},
            {"up_to": 10000, "unit_amount": "0.002"},
            {"up_to": None, "unit_amount": "0.001", "flat_amount": "10"},
        ],
        "currency": "USD",
        "billing_period": "MONTHLY",
        "invoice_cadence": "ARREAR",
        "meter_id": meter_id,
        **fields,
    }


def ids(res):
    assert res.status == 200, res.text
    return [item["id"] for item in res.body["items"]]


# -- create and get ------------------------------------------------------------------------------------------


def test_create_returns_201_with_flexprice_fields(tenant):
    res = create(tenant, lookup_key="growth", description="For growing teams", metadata={"tier": "2"})
    assert res.status == 201, res.text
    plan = res.body
    assert set(plan) == PLAN_FIELDS | {"prices"}
    assert plan["id"].startswith("plan_") and len(plan["id"]) == 31
    assert plan["name"] == "Growth" and plan["lookup_key"] == "growth"
    assert plan["description"] == "For growing teams"
    assert plan["metadata"] == {"tier": "2"}
    assert plan["status"] == "published"
    assert plan["tenant_id"] == tenant[0] and plan["environment_id"] == tenant[1]
    assert plan["created_at"].endswith("Z") and plan["created_at"] == plan["updated_at"]
    assert plan["prices"] == []
    assert res.headers["Content-Type"] == "application/json"
    got = call("GET", f"/api/v1/plans/{plan['id']}", tenant=tenant)
    assert got.status == 200 and got.body == plan


def test_create_with_inline_prices_in_one_go(tenant):
    meter = make_meter(tenant)
    res = create(
        tenant,
        lookup_key="growth",
        prices=[
            flat_fee(display_name="Platform fee", lookup_key="growth-base"),
            tiered_usage(meter, display_name="API calls"),
            flat_fee(
                type="USAGE",
                billing_model="PACKAGE",
                amount="5",
                transform_quantity={"divide_by": 100, "round": "down"},
                invoice_cadence="ARREAR",
                meter_id=meter,
            ),
        ],
    )
    assert res.status == 201, res.text
    plan = res.body
    prices = plan["prices"]
    assert [p["display_name"] for p in prices] == ["Platform fee", "API calls", None]
    assert all(p["entity_type"] == "PLAN" and p["entity_id"] == plan["id"] for p in prices)
    assert all(p["status"] == "published" and p["id"].startswith("price_") for p in prices)
    base, calls, package = prices
    assert (base["amount"], base["display_amount"], base["lookup_key"]) == ("49.00", "$49.00", "growth-base")
    assert calls["currency"] == "usd" and calls["meter_id"] == meter and calls["tier_mode"] == "SLAB"
    assert calls["tiers"] == [
        {"up_to": 1000, "unit_amount": "0.00"},
        {"up_to": 10000, "unit_amount": "0.002"},
        {"up_to": None, "unit_amount": "0.001", "flat_amount": "10.00"},
    ]
    assert package["transform_quantity"] == {"divide_by": 100, "round": "down"}
    assert package["amount"] == "5.00"
    # GET shows the same plan with the same prices, in the order they were given
    got = call("GET", f"/api/v1/plans/{plan['id']}", tenant=tenant)
    assert got.body == plan
    # and the prices are ordinary prices of the plan
    listed = call("GET", "/api/v1/prices", tenant=tenant, query={"plan_id": plan["id"], "order": "asc"})
    assert listed.body["items"] == prices
    assert call("GET", f"/api/v1/prices/{calls['id']}", tenant=tenant).body == calls


def test_plan_get_excludes_archived_prices(tenant):
    plan = create(tenant, prices=[flat_fee(amount="1"), flat_fee(amount="2"), flat_fee(amount="3")]).body
    middle = plan["prices"][1]["id"]
    assert call("DELETE", f"/api/v1/prices/{middle}", tenant=tenant).status == 200
    added = call(
        "POST",
        "/api/v1/prices",
        tenant=tenant,
        body={**flat_fee(amount="4"), "entity_type": "PLAN", "entity_id": plan["id"]},
    )
    assert added.status == 201, added.text
    got = call("GET", f"/api/v1/plans/{plan['id']}", tenant=tenant).body
    assert [p["amount"] for p in got["prices"]] == ["1.00", "3.00", "4.00"]


# -- all or nothing ------------------------------------------------------------------------------------------


def test_one_bad_inline_price_writes_nothing(tenant):
    meter = make_meter(tenant)
    before = stored_items(tenant)
    cases = [
        ([flat_fee(), flat_fee(amount="-1")], 400, "prices.1.amount"),
        ([flat_fee(), tiered_usage(meter, invoice_cadence="ADVANCE")], 400, "prices.1.invoice_cadence"),
        ([tiered_usage(meter, tiers=[{"up_to": 5, "unit_amount": "1"}])], 400, "prices.0.tiers.0.up_to"),
        ([flat_fee(), flat_fee(type="USAGE", invoice_cadence="ARREAR")], 400, "prices.1.meter_id"),
        ([flat_fee(currency="dollars")], 400, "prices.0.currency"),
        ([flat_fee(), {"type": "FIXED"}], 400, "prices.1.billing_model"),
        ([flat_fee(lookup_key="k"), flat_fee(lookup_key="k")], 400, "prices.1.lookup_key"),
        ("not a list", 400, "prices"),
    ]
    for prices, status, field in cases:
        res = create(tenant, lookup_key="growth", prices=prices)
        assert res.status == status, (prices, res.text)
        assert res.body["code"] == "validation_error"
        assert field in [e["field"] for e in res.body["details"]["errors"]], (field, res.text)
    unknown = create(tenant, prices=[flat_fee(), tiered_usage("meter_01KAXS2E5Q3V8W9Y0Z1A2B3C4D")])
    assert unknown.status == 404 and unknown.body["code"] == "not_found"
    assert unknown.body["details"]["field"] == "prices.1.meter_id"
    archived = create(tenant, prices=[tiered_usage(make_meter(tenant, status="archived"))])
    assert archived.status == 404 and archived.body["details"]["field"] == "prices.0.meter_id"
    after = [k for k in stored_items(tenant) if not k[0].endswith("#meter")]
    assert after == [k for k in before if not k[0].endswith("#meter")]
    assert call("GET", "/api/v1/plans", tenant=tenant).body["pagination"]["total"] == 0
    # the lookup key was never claimed
    assert create(tenant, lookup_key="growth").status == 201


def test_taken_price_lookup_key_rolls_back_the_whole_plan(tenant):
    first = create(tenant, prices=[flat_fee(lookup_key="base")])
    assert first.status == 201
    before = stored_items(tenant)
    res = create(tenant, name="Second", lookup_key="second", prices=[flat_fee(), flat_fee(lookup_key="base")])
    assert res.status == 409, res.text
    assert res.body["code"] == "already_exists"
    assert res.body["details"]["field"] == "prices.1.lookup_key"
    assert stored_items(tenant) == before
    assert ids(call("GET", "/api/v1/plans", tenant=tenant)) == [first.body["id"]]


def test_inline_price_limits(tenant):
    too_many = create(tenant, prices=[flat_fee()] * 100)
    assert too_many.status == 400 and too_many.body["details"]["errors"][0]["field"] == "prices"
    keyed = create(tenant, prices=[flat_fee(lookup_key=f"k{i}") for i in range(50)])
    assert keyed.status == 400 and keyed.body["details"]["errors"][0]["field"] == "prices"
    assert stored_items(tenant) == []
    most = create(tenant, lookup_key="big", prices=[flat_fee(amount=str(i)) for i in range(98)])
    assert most.status == 201, most.text
    got = call("GET", f"/api/v1/plans/{most.body['id']}", tenant=tenant).body
    assert [p["amount"] for p in got["prices"]] == [f"{i}.00" for i in range(98)]


# -- uniqueness, update, archive -----------------------------------------------------------------------------


def test_duplicate_lookup_key_is_409(tenant, other_tenant):
    assert create(tenant, lookup_key="growth").status == 201
    res = create(tenant, name="Other", lookup_key="growth")
    assert res.status == 409
    assert res.body["code"] == "already_exists" and res.body["http_status_code"] == 409
    assert call("GET", "/api/v1/plans", tenant=tenant).body["pagination"]["total"] == 1
    assert create(other_tenant, lookup_key="growth").status == 201


def test_update_fields_and_lookup_key(tenant):
    plan = create(tenant, lookup_key="growth", description="old", metadata={"a": "1"}).body
    res = call(
        "PUT",
        f"/api/v1/plans/{plan['id']}",
        tenant=tenant,
        body={"name": "Growth 2", "description": "new", "metadata": {"b": "2"}, "display_order": 3, "x": 1},
    )
    assert res.status == 200, res.text
    updated = res.body
    assert (updated["name"], updated["description"], updated["metadata"]) == ("Growth 2", "new", {"b": "2"})
    assert updated["display_order"] == 3 and updated["lookup_key"] == "growth"
    assert updated["updated_at"] >= plan["updated_at"] and updated["created_at"] == plan["created_at"]
    got = call("GET", f"/api/v1/plans/{plan['id']}", tenant=tenant).body
    assert {k: v for k, v in got.items() if k != "prices"} == updated
    # a new lookup key frees the old one
    res = call("PUT", f"/api/v1/plans/{plan['id']}", tenant=tenant, body={"lookup_key": "growth-v2"})
    assert res.status == 200 and res.body["lookup_key"] == "growth-v2"
    assert create(tenant, name="Reuse", lookup_key="growth").status == 201
    # a lookup key held by another plan is refused, and nothing changes
    res = call("PUT", f"/api/v1/plans/{plan['id']}", tenant=tenant, body={"lookup_key": "growth", "name": "X"})
    assert res.status == 409 and res.body["code"] == "already_exists"
    assert call("GET", f"/api/v1/plans/{plan['id']}", tenant=tenant).body["name"] == "Growth 2"


def test_update_rejects_bad_input(tenant):
    plan = create(tenant).body
    for body in ({"name": ""}, {"name": 5}, {"metadata": {"a": {"b": 1}}}, {"display_order": "1"}):
        res = call("PUT", f"/api/v1/plans/{plan['id']}", tenant=tenant, body=body)
        assert res.status == 400 and res.body["code"] == "validation_error", body
    assert call("PUT", f"/api/v1/plans/{plan['id']}", tenant=tenant, raw_body=b"{nope").status == 400
    assert call("PUT", f"/api/v1/plans/{MISSING_PLAN}", tenant=tenant, body={"name": "x"}).status == 404
    assert call("GET", f"/api/v1/plans/{plan['id']}", tenant=tenant).body["name"] == "Growth"


def test_delete_archives_plan(tenant):
    plan = create(tenant, lookup_key="growth", prices=[flat_fee()]).body
    res = call("DELETE", f"/api/v1/plans/{plan['id']}", tenant=tenant)
    assert res.status == 200 and res.body == {"message": "plan deleted successfully"}
    got = call("GET", f"/api/v1/plans/{plan['id']}", tenant=tenant).body
    assert got["status"] == "archived"
    assert call("GET", "/api/v1/plans", tenant=tenant).body["items"] == []
    assert ids(call("GET", "/api/v1/plans", tenant=tenant, query={"status": "archived"})) == [plan["id"]]
    assert call("DELETE", f"/api/v1/plans/{plan['id']}", tenant=tenant).status == 200
    # an archived plan takes no new prices and no updates; its lookup key is free again
    price = {**flat_fee(), "entity_type": "PLAN", "entity_id": plan["id"]}
    assert call("POST", "/api/v1/prices", tenant=tenant, body=price).status == 404
    assert call("PUT", f"/api/v1/plans/{plan['id']}", tenant=tenant, body={"name": "x"}).status == 404
    assert create(tenant, lookup_key="growth").status == 201
    assert call("DELETE", f"/api/v1/plans/{MISSING_PLAN}", tenant=tenant).status == 404


# -- list and search -----------------------------------------------------------------------------------------


def test_list_and_search_filters_and_pagination(tenant):
    made = [
        create(tenant, name=f"P{i}", lookup_key=f"p{i}", metadata={"family": "even" if i % 2 == 0 else "odd"})
        for i in range(5)
    ]
    plan_ids = [res.body["id"] for res in made]
    newest_first = plan_ids[::-1]
    listed = call("GET", "/api/v1/plans", tenant=tenant)
    assert ids(listed) == newest_first
    assert listed.body["pagination"] == {"total": 5, "limit": 50, "offset": 0}
    assert all("prices" not in p for p in listed.body["items"])
    page = call("GET", "/api/v1/plans", tenant=tenant, query={"limit": 2, "offset": 1})
    assert ids(page) == [plan_ids[3], plan_ids[2]]
    assert page.body["pagination"] == {"total": 5, "limit": 2, "offset": 1}
    asc = call("GET", "/api/v1/plans", tenant=tenant, query={"order": "asc", "limit": 2})
    assert ids(asc) == plan_ids[:2]
    assert ids(call("GET", "/api/v1/plans", tenant=tenant, query={"lookup_key": "p3"})) == [plan_ids[3]]
    wanted = f"{plan_ids[0]},{plan_ids[4]}"
    assert ids(call("GET", "/api/v1/plans", tenant=tenant, query={"plan_ids": wanted})) == [
        plan_ids[4],
        plan_ids[0],
    ]
    search = call("POST", "/api/v1/plans/search", tenant=tenant, body={"metadata": {"family": "odd"}})
    assert ids(search) == [plan_ids[3], plan_ids[1]]
    search = call(
        "POST",
        "/api/v1/plans/search",
        tenant=tenant,
        body={"plan_ids": plan_ids[:3], "order": "asc", "offset": 1},
    )
    assert ids(search) == plan_ids[1:3]
    assert search.body["pagination"] == {"total": 3, "limit": 50, "offset": 1}


def test_expand_prices_on_list_and_search(tenant):
    plan = create(tenant, prices=[flat_fee(amount="1"), flat_fee(amount="2")]).body
    bare = create(tenant, name="Bare").body
    expanded = call("GET", "/api/v1/plans", tenant=tenant, query={"expand": "prices"}).body["items"]
    assert [p["id"] for p in expanded] == [bare["id"], plan["id"]]
    assert expanded[0]["prices"] == [] and expanded[1]["prices"] == plan["prices"]
    searched = call("POST", "/api/v1/plans/search", tenant=tenant, body={"expand": "entitlements,prices"})
    assert searched.body["items"] == expanded


def test_bad_queries_and_bodies_are_400(tenant):
    for query in (
        {"limit": 0},
        {"limit": 1001},
        {"offset": -1},
        {"status": "gone"},
        {"start_time": "yesterday"},
    ):
        res = call("GET", "/api/v1/plans", tenant=tenant, query=query)
        assert res.status == 400 and res.body["code"] == "validation_error", query
    for raw in (b"{not json", b"[1,2]", b"", b"42"):
        assert call("POST", "/api/v1/plans", tenant=tenant, raw_body=raw).status == 400, raw
        assert call("POST", "/api/v1/plans/search", tenant=tenant, raw_body=raw).status == 400, raw
    for body in (
        {},
        {"name": ""},
        {"name": 7},
        {"name": "x", "metadata": ["a"]},
        {"name": "x", "display_order": 1.5},
        {"name": "x", "lookup_key": 9},
    ):
        res = call("POST", "/api/v1/plans", tenant=tenant, body=body)
        assert res.status == 400 and res.body["code"] == "validation_error", body
    assert call("POST", "/api/v1/plans/search", tenant=tenant, body={"plan_ids": [1]}).status == 400
    assert call("GET", "/api/v1/plans", tenant=tenant).body["pagination"]["total"] == 0


def test_unknown_fields_are_ignored(tenant):
    res = create(tenant, entitlements=[{"feature_id": "feat_x"}], credit_grants=[], surprise=1)
    assert res.status == 201, res.text
    assert "surprise" not in res.body and "entitlements" not in res.body


def test_missing_key_is_401():
    res = call("GET", "/api/v1/plans", tenant=None)
    assert res.status == 401 and res.body["code"] == "unauthorized" and res.body["http_status_code"] == 401


def test_other_tenant_sees_404_and_empty_lists(tenant, other_tenant):
    plan = create(tenant, lookup_key="growth", prices=[flat_fee()]).body
    pid = plan["id"]
    assert call("GET", f"/api/v1/plans/{pid}", tenant=other_tenant).status == 404
    assert call("PUT", f"/api/v1/plans/{pid}", tenant=other_tenant, body={"name": "pwn"}).status == 404
    assert call("DELETE", f"/api/v1/plans/{pid}", tenant=other_tenant).status == 404
    assert call("GET", "/api/v1/plans", tenant=other_tenant).body["pagination"]["total"] == 0
    assert call("GET", "/api/v1/plans", tenant=other_tenant, query={"plan_ids": pid}).body["items"] == []
    searched = call("POST", "/api/v1/plans/search", tenant=other_tenant, body={"lookup_key": "growth"})
    assert searched.status == 200 and searched.body["items"] == []
    # an inline price cannot use the first tenant's meter
    meter = make_meter(tenant)
    assert create(other_tenant, prices=[tiered_usage(meter)]).status == 404
    assert call("GET", f"/api/v1/plans/{pid}", tenant=tenant).body == plan


# -- sample events -------------------------------------------------------------------------------------------

SAMPLES = sorted(
    p for p in (ROOT / "events" / "api").glob("*.json") if p.stem.split("__")[0].startswith(("plans_", "prices_"))
)


def test_every_plan_and_price_function_has_a_sample_event():
    functions = {
        fn.code_uri.name
        for fn in tpl.functions(tpl.load()).values()
        if fn.code_uri.name.startswith(("plans_", "prices_"))
    }
    assert len(functions) == 11
    assert {p.stem.split("__")[0] for p in SAMPLES} == functions


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_sample_event_runs_through_its_function(path, aws_endpoint):
    folder = path.stem.split("__")[0]
    (fn,) = [f for f in tpl.functions(tpl.load()).values() if f.code_uri.name == folder]
    event = json.loads(path.read_text())
    assert event["requestContext"]["authorizer"]["lambda"] == {
        "tenant_id": "tenant_sample",
        "environment_id": "env_sample",
        "key_id": "key_sample",
    }
    assert event["routeKey"] in {
        f"{e['Properties']['Method'].upper()} {e['Properties']['Path']}" for e in fn.events.values()
    }
    result = load_handler(fn.module_path, fn.attribute)(event, LambdaContext(fn.logical_id))
    assert result["statusCode"] < 500, result
    assert result["headers"]["Content-Type"] == "application/json"
    body = json.loads(result["body"])
    if result["statusCode"] >= 400:
        # the samples name objects that do not exist in an empty stack (404), or repeat a create (409)
        assert result["statusCode"] in (404, 409) and body["code"] in ("not_found", "already_exists"), body
