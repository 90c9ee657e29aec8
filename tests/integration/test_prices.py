"""Prices through their functions, against the embedded DynamoDB."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing import wiring
from billing.ids import new_id
from billing.scope import Scope
from billing.services import prices as price_service
from billing.store import catalog
from billing.timeutil import iso, utcnow
from tests.support.api import call

PRICE_FIELDS = {
    "id",
    "tenant_id",
    "environment_id",
    "entity_type",
    "entity_id",
    "type",
    "billing_model",
    "amount",
    "display_amount",
    "currency",
    "price_unit_type",
    "billing_period",
    "billing_period_count",
    "billing_cadence",
    "invoice_cadence",
    "meter_id",
    "transform_quantity",
    "lookup_key",
    "description",
    "display_name",
    "metadata",
    "status",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
}


# -- helpers -------------------------------------------------------------------------------------------------


def make_meter(tenant, status="published", event_name="api.call"):
    """A meter record as the features endpoints store it."""
    now = iso(utcnow())
    record = {
        "id": new_id("meter"),
        "tenant_id": tenant[0],
        "environment_id": tenant[1],
        "name": "API calls",
        "event_name": event_name,
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


def make_plan(tenant, **fields):
    res = call("POST", "/api/v1/plans", tenant=tenant, body={"name": "Growth", **fields})
    assert res.status == 201, res.text
    return res.body


def fixed(plan_id, **fields):
    return {
        "entity_type": "PLAN",
        "entity_id": plan_id,
        "type": "FIXED",
        "billing_model": "FLAT_FEE",
        "amount": "12.50",
        "currency": "usd",
        "billing_period": "MONTHLY",
        "invoice_cadence": "ADVANCE",
        **fields,
    }


def usage(plan_id, meter_id, **fields):
    return {
        "entity_type": "PLAN",
        "entity_id": plan_id,
        "type": "USAGE",
        "billing_model": "FLAT_FEE",
        "amount": "0.01",
        "currency": "usd",
        "billing_period": "MONTHLY",
        "invoice_cadence": "ARREAR",
        "meter_id": meter_id,
        **fields,
    }


def create_price(tenant, body):
    return call("POST", "/api/v1/prices", tenant=tenant, body=body)


def stored_items(tenant):
    """Every item of the tenant's environment, read straight from the table (tests only: a Scan)."""
    table = wiring.entities()
    prefix = f"{tenant[0]}#{tenant[1]}#"
    items, kwargs = (
        [],
        {
            "TableName": table.name,
            "FilterExpression": "begins_with(PK, :p)",
            "ExpressionAttributeValues": {":p": {"S": prefix}},
        },
    )
    while True:
        out = table.client.scan(**kwargs)
        items.extend(out.get("Items", []))
        if "LastEvaluatedKey" not in out:
            return sorted((i["PK"]["S"], i["SK"]["S"]) for i in items)
        kwargs["ExclusiveStartKey"] = out["LastEvaluatedKey"]


@pytest.fixture
def plan(tenant):
    return make_plan(tenant)


@pytest.fixture
def meter(tenant):
    return make_meter(tenant)


# -- each billing model, created and read back ---------------------------------------------------------------


def test_fixed_flat_fee_round_trip(tenant, plan):
    res = create_price(tenant, fixed(plan["id"], currency="USD", display_name="Platform fee"))
    assert res.status == 201, res.text
    body = res.body
    assert set(body) == PRICE_FIELDS
    assert body["id"].startswith("price_") and len(body["id"]) == 32
    assert body["tenant_id"] == tenant[0] and body["environment_id"] == tenant[1]
    assert body["entity_type"] == "PLAN" and body["entity_id"] == plan["id"]
    assert body["type"] == "FIXED" and body["billing_model"] == "FLAT_FEE"
    assert body["amount"] == "12.50"
    assert body["display_amount"] == "$12.50"
    assert body["currency"] == "usd"
    assert body["billing_period"] == "MONTHLY" and body["billing_period_count"] == 1
    assert body["billing_cadence"] == "RECURRING"
    assert body["invoice_cadence"] == "ADVANCE"
    assert body["price_unit_type"] == "FIAT"
    assert body["meter_id"] is None and body["transform_quantity"] is None
    assert body["display_name"] == "Platform fee"
    assert body["metadata"] == {}
    assert body["status"] == "published"
    assert body["created_at"].endswith("Z")
    assert res.headers["Content-Type"] == "application/json"
    got = call("GET", f"/api/v1/prices/{body['id']}", tenant=tenant)
    assert got.status == 200 and got.body == body


def test_usage_package_round_trip(tenant, plan, meter):
    body = usage(
        plan["id"],
        meter,
        billing_model="PACKAGE",
        amount="0.50",
        transform_quantity={"divide_by": 1000},
        billing_period="QUARTERLY",
        billing_period_count=2,
        lookup_key="api-calls-package",
        description="per thousand calls",
        metadata={"unit": "1k calls"},
    )
    res = create_price(tenant, body)
    assert res.status == 201, res.text
    price = res.body
    assert price["amount"] == "0.50" and price["display_amount"] == "$0.50"
    assert price["meter_id"] == meter
    assert price["transform_quantity"] == {"divide_by": 1000, "round": "up"}
    assert price["billing_period"] == "QUARTERLY" and price["billing_period_count"] == 2
    assert price["lookup_key"] == "api-calls-package"
    assert price["description"] == "per thousand calls"
    assert price["metadata"] == {"unit": "1k calls"}
    assert "tiers" not in price and "tier_mode" not in price
    assert call("GET", f"/api/v1/prices/{price['id']}", tenant=tenant).body == price

    down = create_price(
        tenant,
        usage(
            plan["id"],
            meter,
            billing_model="PACKAGE",
            amount="2",
            transform_quantity={"divide_by": 10, "round": "down"},
        ),
    )
    assert down.status == 201, down.text
    assert down.body["transform_quantity"] == {"divide_by": 10, "round": "down"}
    assert down.body["amount"] == "2.00"


@pytest.mark.parametrize("mode", ["VOLUME", "SLAB"])
def test_usage_tiered_round_trip(tenant, plan, meter, mode):
    body = usage(
        plan["id"],
        meter,
        billing_model="TIERED",
        tier_mode=mode,
        tiers=[
            {"up_to": 1000, "unit_amount": "0.02"},
            {"up_to": 5000, "unit_amount": "0.015", "flat_amount": "5"},
            {"up_to": None, "unit_amount": "0.0100", "flat_amount": "12.50"},
        ],
    )
    del body["amount"]
    res = create_price(tenant, body)
    assert res.status == 201, res.text
    price = res.body
    assert price["tier_mode"] == mode
    assert price["tiers"] == [
        {"up_to": 1000, "unit_amount": "0.02"},
        {"up_to": 5000, "unit_amount": "0.015", "flat_amount": "5.00"},
        {"up_to": None, "unit_amount": "0.01", "flat_amount": "12.50"},
    ]
    assert price["amount"] == "0.00" and price["display_amount"] == "$0.00"
    assert call("GET", f"/api/v1/prices/{price['id']}", tenant=tenant).body == price


def test_fixed_tiered_and_json_numbers_accepted(tenant, plan):
    """Flexprice's SDK sends money as strings; a JSON number is read exactly (never through a float)."""
    body = fixed(
        plan["id"],
        billing_model="TIERED",
        tier_mode="VOLUME",
        amount="0",
        tiers=[{"up_to": 10, "unit_amount": 0.1}, {"unit_amount": 0.05, "flat_amount": 1}],
    )
    res = create_price(tenant, body)
    assert res.status == 201, res.text
    assert res.body["tiers"] == [
        {"up_to": 10, "unit_amount": "0.10"},
        {"up_to": None, "unit_amount": "0.05", "flat_amount": "1.00"},
    ]
    res = create_price(tenant, fixed(plan["id"], amount=19.99))
    assert res.status == 201 and res.body["amount"] == "19.99"


def test_currency_minor_units_and_symbols(tenant, plan):
    cases = [
        ({"currency": "JPY", "amount": "1000"}, "1000", "¥1000"),
        ({"currency": "kwd", "amount": "1.5"}, "1.500", "KWD1.500"),
        ({"currency": "eur", "amount": "0.0025"}, "0.0025", "€0.0025"),
        ({"currency": "chf", "amount": "7"}, "7.00", "CHF7.00"),
    ]
    for fields, amount, display in cases:
        res = create_price(tenant, fixed(plan["id"], **fields))
        assert res.status == 201, res.text
        assert (res.body["amount"], res.body["display_amount"]) == (amount, display)
        got = call("GET", f"/api/v1/prices/{res.body['id']}", tenant=tenant).body
        assert (got["amount"], got["display_amount"]) == (amount, display)


def test_stored_record_is_the_shared_price_format(tenant, plan, meter):
    body = usage(
        plan["id"],
        meter,
        billing_model="TIERED",
        tier_mode="SLAB",
        tiers=[
            {"up_to": 100, "unit_amount": "0.10", "flat_amount": "1.00"},
            {"up_to": None, "unit_amount": "0"},
        ],
        lookup_key="calls",
    )
    del body["amount"]
    price_id = create_price(tenant, body).body["id"]
    scope = Scope(*tenant)
    record = price_service.get(scope, price_id)
    assert record == {
        "id": price_id,
        "tenant_id": tenant[0],
        "environment_id": tenant[1],
        "entity_type": "PLAN",
        "entity_id": plan["id"],
        "plan_id": plan["id"],
        "type": "USAGE",
        "billing_model": "TIERED",
        "tier_mode": "SLAB",
        "tiers": [
            {"up_to": 100, "unit_amount": Decimal("0.1"), "flat_amount": Decimal("1")},
            {"up_to": None, "unit_amount": Decimal("0"), "flat_amount": None},
        ],
        "amount": None,
        "currency": "usd",
        "billing_period": "MONTHLY",
        "billing_period_count": 1,
        "billing_cadence": "RECURRING",
        "invoice_cadence": "ARREAR",
        "meter_id": meter,
        "transform_quantity": None,
        "price_unit_type": "FIAT",
        "lookup_key": "calls",
        "description": None,
        "metadata": {},
        "display_name": None,
        "status": "published",
        "created_at": record["created_at"],
        "updated_at": record["created_at"],
        "created_by": "api",
        "updated_by": "api",
        "version": 1,
    }
    assert type(record["tiers"][0]["up_to"]) is int and type(record["billing_period_count"]) is int
    raw = wiring.entities().get(f"{scope.prefix}#price", price_id)
    assert raw["GSI1PK"] == f"{scope.prefix}#plan_prices#{plan['id']}"
    assert raw["GSI1SK"] == price_id
    assert [p["id"] for p in price_service.of_plan(scope, plan["id"])] == [price_id]


# -- validation ----------------------------------------------------------------------------------------------


def _without(body, *names):
    return {k: v for k, v in body.items() if k not in names}


TIERS = [{"up_to": 10, "unit_amount": "1"}, {"up_to": None, "unit_amount": "0.5"}]


def invalid_cases(plan_id, meter_id):
    """(label, body, field named in the error) for every rule of the contract."""
    f = fixed(plan_id)
    u = usage(plan_id, meter_id)
    tiered = {**_without(u, "amount"), "billing_model": "TIERED", "tier_mode": "VOLUME", "tiers": TIERS}
    package = {**u, "billing_model": "PACKAGE", "transform_quantity": {"divide_by": 100}}
    return [
        ("entity_type missing", _without(f, "entity_type"), "entity_type"),
        ("entity_type not PLAN", {**f, "entity_type": "SUBSCRIPTION"}, "entity_type"),
        ("entity_id missing", _without(f, "entity_id"), "entity_id"),
        ("entity_id wrong type", {**f, "entity_id": 12}, "entity_id"),
        ("type missing", _without(f, "type"), "type"),
        ("type unknown", {**f, "type": "ONE_TIME"}, "type"),
        ("type lower case", {**f, "type": "fixed"}, "type"),
        ("billing_model unknown", {**f, "billing_model": "VOLUME"}, "billing_model"),
        ("usage without meter", _without(u, "meter_id"), "meter_id"),
        ("usage with blank meter", {**u, "meter_id": ""}, "meter_id"),
        ("fixed with meter", {**f, "meter_id": meter_id}, "meter_id"),
        ("billing_period missing", _without(f, "billing_period"), "billing_period"),
        ("billing_period ONETIME", {**f, "billing_period": "ONETIME"}, "billing_period"),
        ("billing_period lower case", {**f, "billing_period": "monthly"}, "billing_period"),
        ("billing_period_count 0", {**f, "billing_period_count": 0}, "billing_period_count"),
        ("billing_period_count string", {**f, "billing_period_count": "1"}, "billing_period_count"),
        ("billing_period_count fraction", {**f, "billing_period_count": 1.5}, "billing_period_count"),
        ("billing_period_count bool", {**f, "billing_period_count": True}, "billing_period_count"),
        ("billing_cadence ONETIME", {**f, "billing_cadence": "ONETIME"}, "billing_cadence"),
        ("invoice_cadence missing", _without(f, "invoice_cadence"), "invoice_cadence"),
        ("invoice_cadence unknown", {**f, "invoice_cadence": "NOW"}, "invoice_cadence"),
        ("usage in advance", {**u, "invoice_cadence": "ADVANCE"}, "invoice_cadence"),
        ("currency missing", _without(f, "currency"), "currency"),
        ("currency two letters", {**f, "currency": "us"}, "currency"),
        ("currency four letters", {**f, "currency": "usdd"}, "currency"),
        ("currency digits", {**f, "currency": "840"}, "currency"),
        ("currency number", {**f, "currency": 840}, "currency"),
        ("flat fee without amount", _without(f, "amount"), "amount"),
        ("flat fee blank amount", {**f, "amount": ""}, "amount"),
        ("package without amount", _without(package, "amount"), "amount"),
        ("amount negative", {**f, "amount": "-1"}, "amount"),
        ("amount negative number", {**f, "amount": -0.5}, "amount"),
        ("amount NaN", {**f, "amount": "NaN"}, "amount"),
        ("amount Infinity", {**f, "amount": "Infinity"}, "amount"),
        ("amount -Infinity", {**f, "amount": "-Infinity"}, "amount"),
        ("amount not a number", {**f, "amount": "12,50"}, "amount"),
        ("amount bool", {**f, "amount": True}, "amount"),
        ("amount object", {**f, "amount": {"value": 1}}, "amount"),
        ("amount too large", {**f, "amount": "1e400"}, "amount"),
        ("amount too precise", {**f, "amount": "0.0000000000001"}, "amount"),
        ("amount beyond 28 digits", {**f, "amount": "1.0000000000000000000000000000000001"}, "amount"),
        ("package without transform", _without(package, "transform_quantity"), "transform_quantity"),
        ("divide_by 0", {**package, "transform_quantity": {"divide_by": 0}}, "transform_quantity.divide_by"),
        (
            "divide_by missing",
            {**package, "transform_quantity": {"round": "up"}},
            "transform_quantity.divide_by",
        ),
        (
            "divide_by string",
            {**package, "transform_quantity": {"divide_by": "10"}},
            "transform_quantity.divide_by",
        ),
        (
            "round unknown",
            {**package, "transform_quantity": {"divide_by": 10, "round": "nearest"}},
            "transform_quantity.round",
        ),
        ("transform on flat fee", {**f, "transform_quantity": {"divide_by": 10}}, "transform_quantity"),
        ("tiered without tier_mode", _without(tiered, "tier_mode"), "tier_mode"),
        ("tier_mode unknown", {**tiered, "tier_mode": "GRADUATED"}, "tier_mode"),
        ("tiered without tiers", _without(tiered, "tiers"), "tiers"),
        ("tiered with empty tiers", {**tiered, "tiers": []}, "tiers"),
        ("tiered with an amount", {**tiered, "amount": "5"}, "amount"),
        (
            "last tier bounded",
            {**tiered, "tiers": [{"up_to": 10, "unit_amount": "1"}, {"up_to": 20, "unit_amount": "1"}]},
            "tiers.1.up_to",
        ),
        (
            "open tier not last",
            {**tiered, "tiers": [{"up_to": None, "unit_amount": "1"}, {"up_to": None, "unit_amount": "1"}]},
            "tiers.0.up_to",
        ),
        (
            "tiers not increasing",
            {
                **tiered,
                "tiers": [
                    {"up_to": 10, "unit_amount": "1"},
                    {"up_to": 10, "unit_amount": "1"},
                    {"up_to": None, "unit_amount": "1"},
                ],
            },
            "tiers.1.up_to",
        ),
        (
            "tiers decreasing",
            {
                **tiered,
                "tiers": [
                    {"up_to": 100, "unit_amount": "1"},
                    {"up_to": 50, "unit_amount": "1"},
                    {"up_to": None, "unit_amount": "1"},
                ],
            },
            "tiers.1.up_to",
        ),
        (
            "up_to negative",
            {**tiered, "tiers": [{"up_to": -1, "unit_amount": "1"}, TIERS[1]]},
            "tiers.0.up_to",
        ),
        (
            "up_to string",
            {**tiered, "tiers": [{"up_to": "10", "unit_amount": "1"}, TIERS[1]]},
            "tiers.0.up_to",
        ),
        (
            "up_to fraction",
            {**tiered, "tiers": [{"up_to": 10.5, "unit_amount": "1"}, TIERS[1]]},
            "tiers.0.up_to",
        ),
        ("unit_amount missing", {**tiered, "tiers": [{"up_to": 10}, TIERS[1]]}, "tiers.0.unit_amount"),
        (
            "unit_amount negative",
            {**tiered, "tiers": [{"up_to": 10, "unit_amount": "-0.01"}, TIERS[1]]},
            "tiers.0.unit_amount",
        ),
        (
            "unit_amount NaN",
            {**tiered, "tiers": [TIERS[0], {"up_to": None, "unit_amount": "NaN"}]},
            "tiers.1.unit_amount",
        ),
        (
            "flat_amount negative",
            {**tiered, "tiers": [{"up_to": 10, "unit_amount": "1", "flat_amount": "-5"}, TIERS[1]]},
            "tiers.0.flat_amount",
        ),
        ("tiers on flat fee", {**f, "tiers": TIERS}, "tiers"),
        ("tiers not a list", {**tiered, "tiers": {"up_to": 10}}, "tiers"),
        ("price_unit_type CUSTOM", {**f, "price_unit_type": "CUSTOM"}, "price_unit_type"),
        ("metadata not strings", {**f, "metadata": {"a": 1}}, "metadata.a"),
        ("lookup_key too long", {**f, "lookup_key": "k" * 256}, "lookup_key"),
    ]


def test_invalid_prices_are_400_naming_the_field_and_write_nothing(tenant, plan, meter):
    before = stored_items(tenant)
    for label, body, field in invalid_cases(plan["id"], meter):
        res = create_price(tenant, body)
        assert res.status == 400, (label, res.text)
        assert res.body["code"] == "validation_error", label
        assert res.body["http_status_code"] == 400
        fields = [e["field"] for e in res.body["details"]["errors"]]
        assert field in fields, (label, fields)
        assert res.body["message"].startswith(f"invalid request: {fields[0]}: "), label
    assert stored_items(tenant) == before


def test_references_must_be_active_and_of_the_same_tenant(tenant, other_tenant, plan, meter):
    archived_meter = make_meter(tenant, status="archived")
    foreign_meter = make_meter(other_tenant)
    foreign_plan = make_plan(other_tenant)
    archived_plan = make_plan(tenant, name="Old")
    assert call("DELETE", f"/api/v1/plans/{archived_plan['id']}", tenant=tenant).status == 200
    before = stored_items(tenant)
    cases = [
        (fixed("plan_01KAXS2E5Q3V8W9Y0Z1A2B3C4D"), "plan"),
        (fixed(foreign_plan["id"]), "plan"),
        (fixed(archived_plan["id"]), "plan"),
        (usage(plan["id"], "meter_01KAXS2E5Q3V8W9Y0Z1A2B3C4D"), "meter"),
        (usage(plan["id"], foreign_meter), "meter"),
        (usage(plan["id"], archived_meter), "meter"),
    ]
    for body, entity in cases:
        res = create_price(tenant, body)
        assert res.status == 404, (body, res.text)
        assert res.body["code"] == "not_found" and res.body["details"]["entity"] == entity
    assert stored_items(tenant) == before
    # the other tenant's plan was left alone
    assert call("GET", "/api/v1/prices", tenant=other_tenant, query={"plan_id": foreign_plan["id"]}).body["items"] == []


def test_lookup_key_is_unique_per_environment_until_archived(tenant, other_tenant, plan):
    first = create_price(tenant, fixed(plan["id"], lookup_key="base-fee"))
    assert first.status == 201
    dup = create_price(tenant, fixed(plan["id"], lookup_key="base-fee", amount="1"))
    assert dup.status == 409
    assert dup.body["code"] == "already_exists" and dup.body["http_status_code"] == 409
    listed = call("GET", "/api/v1/prices", tenant=tenant, query={"plan_id": plan["id"]}).body
    assert listed["pagination"]["total"] == 1
    # another environment has its own keys
    other_plan = make_plan(other_tenant)
    assert create_price(other_tenant, fixed(other_plan["id"], lookup_key="base-fee")).status == 201
    # archiving frees the key
    assert call("DELETE", f"/api/v1/prices/{first.body['id']}", tenant=tenant).status == 200
    assert create_price(tenant, fixed(plan["id"], lookup_key="base-fee")).status == 201


def test_nulls_take_the_defaults(tenant, plan):
    body = fixed(
        plan["id"],
        billing_cadence=None,
        price_unit_type=None,
        billing_period_count=None,
        meter_id=None,
        lookup_key=None,
        description="",
    )
    res = create_price(tenant, body)
    assert res.status == 201, res.text
    assert (res.body["billing_cadence"], res.body["price_unit_type"]) == ("RECURRING", "FIAT")
    assert res.body["billing_period_count"] == 1
    assert res.body["meter_id"] is None and res.body["lookup_key"] is None and res.body["description"] is None


def test_plan_archived_while_the_price_is_written_writes_nothing(tenant, plan, monkeypatch):
    """The price's transaction re-checks that its plan is still active: a stale read cannot attach it."""
    stale = catalog.plans().get(Scope(*tenant), plan["id"])
    assert call("DELETE", f"/api/v1/plans/{plan['id']}", tenant=tenant).status == 200
    before = stored_items(tenant)

    class StaleRead:
        def get_active(self, scope, plan_id):
            return stale

    monkeypatch.setattr(price_service.catalog, "plans", StaleRead)
    res = create_price(tenant, fixed(plan["id"], lookup_key="late"))
    assert res.status == 404, res.text
    assert res.body["code"] == "not_found" and res.body["details"]["field"] == "entity_id"
    assert stored_items(tenant) == before


def test_unknown_fields_are_ignored(tenant, plan):
    body = fixed(plan["id"], trial_period_days=14, filter_values={"region": ["eu"]}, surprise={"a": 1})
    res = create_price(tenant, body)
    assert res.status == 201, res.text
    assert "surprise" not in res.body and "filter_values" not in res.body


def test_malformed_bodies_are_400(tenant, plan):
    for raw in (b"{not json", b"[1,2]", b"", b'"text"', b"null"):
        res = call("POST", "/api/v1/prices", tenant=tenant, raw_body=raw)
        assert res.status == 400, (raw, res.text)
        assert res.body["code"] == "validation_error"
    assert call("GET", "/api/v1/prices", tenant=tenant).body["pagination"]["total"] == 0


# -- list, search, get, archive ------------------------------------------------------------------------------


def test_list_and_search_filters_and_pagination(tenant, meter):
    plan_a, plan_b = make_plan(tenant, name="A"), make_plan(tenant, name="B")
    a = [create_price(tenant, fixed(plan_a["id"], amount=str(i))).body["id"] for i in range(3)]
    a.append(create_price(tenant, usage(plan_a["id"], meter)).body["id"])
    b = [create_price(tenant, fixed(plan_b["id"], billing_period="ANNUAL")).body["id"] for _ in range(2)]
    everything = b[::-1] + a[::-1]  # newest first

    def ids(res):
        assert res.status == 200, res.text
        return [p["id"] for p in res.body["items"]]

    listed = call("GET", "/api/v1/prices", tenant=tenant)
    assert ids(listed) == everything
    assert listed.body["pagination"] == {"total": 6, "limit": 50, "offset": 0}
    assert ids(call("GET", "/api/v1/prices", tenant=tenant, query={"plan_id": plan_a["id"]})) == a[::-1]
    assert ids(call("GET", "/api/v1/prices", tenant=tenant, query={"entity_ids": plan_b["id"]})) == b[::-1]
    both = f"{plan_a['id']},{plan_b['id']}"
    assert ids(call("GET", "/api/v1/prices", tenant=tenant, query={"entity_ids": both})) == everything
    assert ids(call("GET", "/api/v1/prices", tenant=tenant, query={"price_ids": f"{a[0]},{b[1]}"})) == [
        b[1],
        a[0],
    ]
    page = call("GET", "/api/v1/prices", tenant=tenant, query={"limit": 2, "offset": 1, "order": "asc"})
    assert ids(page) == [a[1], a[2]]
    assert page.body["pagination"] == {"total": 6, "limit": 2, "offset": 1}

    search = call(
        "POST",
        "/api/v1/prices/search",
        tenant=tenant,
        body={"entity_ids": [plan_a["id"]], "meter_ids": [meter], "limit": 10},
    )
    assert ids(search) == [a[3]]
    search = call("POST", "/api/v1/prices/search", tenant=tenant, body={"billing_periods": ["ANNUAL"]})
    assert ids(search) == b[::-1]
    search = call(
        "POST",
        "/api/v1/prices/search",
        tenant=tenant,
        body={"plan_ids": [plan_a["id"]], "entity_ids": [plan_b["id"]]},
    )
    assert ids(search) == []

    assert call("DELETE", f"/api/v1/prices/{a[0]}", tenant=tenant).status == 200
    active = call("GET", "/api/v1/prices", tenant=tenant, query={"plan_id": plan_a["id"]})
    assert ids(active) == [a[3], a[2], a[1]]
    archived = call("GET", "/api/v1/prices", tenant=tenant, query={"plan_id": plan_a["id"], "status": "archived"})
    assert ids(archived) == [a[0]]
    assert ids(call("POST", "/api/v1/prices/search", tenant=tenant, body={"status": "archived"})) == [a[0]]


def test_bad_list_queries_are_400(tenant):
    for query in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"status": "gone"}, {"order": "sideways"}):
        res = call("GET", "/api/v1/prices", tenant=tenant, query=query)
        assert res.status == 400, query
        assert res.body["code"] == "validation_error"
    assert call("POST", "/api/v1/prices/search", tenant=tenant, body={"limit": "many"}).status == 400
    assert call("POST", "/api/v1/prices/search", tenant=tenant, body={"price_ids": [1]}).status == 400
    assert call("POST", "/api/v1/prices/search", tenant=tenant, raw_body=b"{").status == 400


def test_delete_archives_and_is_idempotent(tenant, plan):
    price = create_price(tenant, fixed(plan["id"])).body
    res = call("DELETE", f"/api/v1/prices/{price['id']}", tenant=tenant)
    assert res.status == 200 and res.body == {"message": "price deleted successfully"}
    got = call("GET", f"/api/v1/prices/{price['id']}", tenant=tenant).body
    assert got["status"] == "archived" and got["updated_at"] >= price["updated_at"]
    assert call("DELETE", f"/api/v1/prices/{price['id']}", tenant=tenant).status == 200
    assert call("GET", "/api/v1/prices", tenant=tenant).body["items"] == []
    missing = call("DELETE", "/api/v1/prices/price_01KAXS2E5Q3V8W9Y0Z1A2B3C4D", tenant=tenant)
    assert missing.status == 404 and missing.body["code"] == "not_found"
    assert call("GET", "/api/v1/prices/price_01KAXS2E5Q3V8W9Y0Z1A2B3C4D", tenant=tenant).status == 404


def test_delete_body_end_date(tenant, plan):
    """Flexprice's DeletePriceRequest: an end date now or past archives; a future one is refused."""
    first = create_price(tenant, fixed(plan["id"])).body
    future = call("DELETE", f"/api/v1/prices/{first['id']}", tenant=tenant, body={"end_date": "2999-01-01T00:00:00Z"})
    assert future.status == 400 and future.body["code"] == "invalid_operation"
    assert call("GET", f"/api/v1/prices/{first['id']}", tenant=tenant).body["status"] == "published"
    bad = call("DELETE", f"/api/v1/prices/{first['id']}", tenant=tenant, body={"end_date": "tomorrow"})
    assert bad.status == 400 and bad.body["code"] == "validation_error"
    assert call("DELETE", f"/api/v1/prices/{first['id']}", tenant=tenant, raw_body=b"{oops").status == 400
    past = call("DELETE", f"/api/v1/prices/{first['id']}", tenant=tenant, body={"end_date": "2020-01-01T00:00:00Z"})
    assert past.status == 200
    assert call("GET", f"/api/v1/prices/{first['id']}", tenant=tenant).body["status"] == "archived"


def test_missing_key_is_401(tenant):
    for method, path in (("GET", "/api/v1/prices"), ("POST", "/api/v1/prices"), ("GET", "/api/v1/prices/x")):
        res = call(method, path, tenant=None, body={} if method == "POST" else None)
        assert res.status == 401 and res.body["code"] == "unauthorized"


def test_other_tenant_sees_nothing_and_changes_nothing(tenant, other_tenant, plan, meter):
    price = create_price(tenant, usage(plan["id"], meter)).body
    pid = price["id"]
    assert call("GET", f"/api/v1/prices/{pid}", tenant=other_tenant).status == 404
    assert call("DELETE", f"/api/v1/prices/{pid}", tenant=other_tenant).status == 404
    assert call("GET", "/api/v1/prices", tenant=other_tenant).body["items"] == []
    assert call("GET", "/api/v1/prices", tenant=other_tenant, query={"plan_id": plan["id"]}).body["items"] == []
    assert call("GET", "/api/v1/prices", tenant=other_tenant, query={"price_ids": pid}).body["items"] == []
    searched = call("POST", "/api/v1/prices/search", tenant=other_tenant, body={"entity_ids": [plan["id"]]})
    assert searched.status == 200 and searched.body["pagination"]["total"] == 0
    # cannot attach a price to the first tenant's plan or meter
    other_plan = make_plan(other_tenant)
    assert create_price(other_tenant, fixed(plan["id"])).status == 404
    assert create_price(other_tenant, usage(other_plan["id"], meter)).status == 404
    assert call("GET", f"/api/v1/prices/{pid}", tenant=tenant).body == price
