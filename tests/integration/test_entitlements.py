"""Entitlements against the embedded AWS: per plan and feature, combined per customer, usage against the limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.api import call
from tests.support.invoicing import fixed, setup, subscribe, use


def feature(tenant: tuple[str, str], kind: str, **fields: Any) -> dict[str, Any]:
    res = call("POST", "/api/v1/features", tenant=tenant, body={"name": f"{kind} feature", "type": kind, **fields})
    assert res.status == 201, res.text
    return dict(res.body)


def entitle(tenant: tuple[str, str], **body: Any) -> Any:
    return call("POST", "/api/v1/entitlements", tenant=tenant, body=body)


def test_a_plans_entitlements_and_a_customers_usage_against_them(tenant):
    ctx = setup(tenant, lambda meter: [fixed("10", "ADVANCE")])
    plan = ctx["plan"]["id"]
    tokens = feature(tenant, "metered", meter_id=ctx["meter"]["id"])
    sso = feature(tenant, "boolean")
    tier = feature(tenant, "static")

    limit = entitle(tenant, plan_id=plan, feature_id=tokens["id"], feature_type="metered", usage_limit=100)
    assert limit.status == 201, limit.text
    assert limit.body["usage_reset_period"] == "MONTHLY" and limit.body["is_soft_limit"] is False
    assert entitle(tenant, plan_id=plan, feature_id=sso["id"], feature_type="boolean").status == 201
    static = entitle(
        tenant, entity_type="PLAN", entity_id=plan, feature_id=tier["id"], feature_type="static", static_value="gold"
    )
    assert static.status == 201, static.text
    listed = call("GET", f"/api/v1/plans/{plan}/entitlements", tenant=tenant)
    assert listed.status == 200 and len(listed.body["items"]) == 3

    now = datetime.now(UTC).replace(microsecond=0)
    sub = subscribe(tenant, ctx, start_date=(now - timedelta(hours=1)).isoformat().replace("+00:00", "Z"))
    for n in (25, 35):
        use(tenant, ctx, n, (now - timedelta(seconds=5)).isoformat().replace("+00:00", "Z"))

    usage = call("GET", "/api/v1/customers/usage", tenant=tenant, query={"customer_id": ctx["customer"]["id"]})
    assert usage.status == 200, usage.text
    rows = {r["feature"]["id"]: r for r in usage.body["features"]}
    assert rows[tokens["id"]]["current_usage"] == "60"
    assert rows[tokens["id"]]["total_limit"] == 100 and rows[tokens["id"]]["usage_percent"] == "60.00"
    assert rows[tokens["id"]]["next_usage_reset_at"] == sub["current_period_end"]
    assert rows[sso["id"]]["is_enabled"] is True and rows[sso["id"]]["is_unlimited"] is True

    by_id = call("GET", f"/api/v1/customers/{ctx['customer']['id']}/entitlements", tenant=tenant)
    by_external = call("GET", "/api/v1/customers/external/acme/entitlements", tenant=tenant)
    assert by_id.status == by_external.status == 200
    assert by_id.body == by_external.body
    features = {f["feature"]["id"]: f["entitlement"] for f in by_id.body["features"]}
    assert features[tier["id"]]["static_values"] == ["gold"]
    assert features[tokens["id"]]["usage_limit"] == 100
    assert [s["id"] for s in by_id.body["subscriptions"]] == [sub["id"]]
    of_sub = call(
        "GET", f"/api/v1/subscriptions/{sub['id']}/entitlements", tenant=tenant, query={"feature_ids": sso["id"]}
    )
    assert [f["feature"]["id"] for f in of_sub.body["features"]] == [sso["id"]]

    lowered = call("PUT", f"/api/v1/entitlements/{limit.body['id']}", tenant=tenant, body={"usage_limit": 50})
    assert lowered.status == 200 and lowered.body["usage_limit"] == 50
    usage = call("GET", "/api/v1/customers/usage", tenant=tenant, query={"customer_lookup_key": "acme"}).body
    assert {r["feature"]["id"]: r.get("usage_percent") for r in usage["features"]}[tokens["id"]] == "120.00"

    gone = call("DELETE", f"/api/v1/entitlements/{limit.body['id']}", tenant=tenant)
    assert gone.status == 200
    assert call("GET", f"/api/v1/entitlements/{limit.body['id']}", tenant=tenant).status == 404
    assert len(call("GET", f"/api/v1/plans/{plan}/entitlements", tenant=tenant).body["items"]) == 2
    again = entitle(tenant, plan_id=plan, feature_id=tokens["id"], feature_type="metered", usage_limit=10)
    assert again.status == 201, again.text


def test_limits_from_several_subscriptions_add_up(tenant):
    ctx = setup(tenant, lambda meter: [fixed("10", "ADVANCE")])
    tokens = feature(tenant, "metered", meter_id=ctx["meter"]["id"])
    other = call("POST", "/api/v1/plans", tenant=tenant, body={"name": "Add-on", "prices": [fixed("5", "ADVANCE")]})
    assert other.status == 201
    for plan_id, amount, soft in ((ctx["plan"]["id"], 100, True), (other.body["id"], 50, False)):
        res = entitle(tenant, plan_id=plan_id, feature_id=tokens["id"], feature_type="metered", usage_limit=amount,
                      is_soft_limit=soft)  # fmt: skip
        assert res.status == 201, res.text
    subscribe(tenant, ctx)
    subscribe(tenant, {**ctx, "plan": other.body})
    view = call("GET", f"/api/v1/customers/{ctx['customer']['id']}/entitlements", tenant=tenant).body
    [combined] = view["features"]
    assert combined["entitlement"]["usage_limit"] == 150
    assert combined["entitlement"]["is_soft_limit"] is False  # one hard limit makes it hard
    assert len(combined["sources"]) == 2


def test_entitlement_requests_are_validated(tenant):
    ctx = setup(tenant, lambda meter: [fixed("10", "ADVANCE")])
    plan = ctx["plan"]["id"]
    tokens = feature(tenant, "metered", meter_id=ctx["meter"]["id"])
    flag = feature(tenant, "boolean")
    cases = [
        ({"plan_id": plan, "feature_id": tokens["id"], "feature_type": "boolean"}, 400),
        ({"plan_id": plan, "feature_id": flag["id"], "feature_type": "boolean", "usage_limit": 3}, 400),
        ({"entity_type": "ADDON", "entity_id": "addon_1", "feature_id": flag["id"], "feature_type": "boolean"}, 400),
        ({"feature_id": flag["id"], "feature_type": "boolean"}, 400),
        ({"plan_id": plan, "feature_id": tokens["id"], "feature_type": "metered", "usage_limit": -1}, 400),
        ({"plan_id": plan, "feature_id": tokens["id"], "feature_type": "metered", "usage_reset_period": "HOURLY"}, 400),
        ({"plan_id": "plan_missing", "feature_id": flag["id"], "feature_type": "boolean"}, 404),
    ]
    for body, status in cases:
        res = entitle(tenant, **body)
        assert res.status == status, (body, res.text)
        assert set(res.body) >= {"code", "message", "http_status_code", "details"}
    assert entitle(tenant, plan_id=plan, feature_id=flag["id"], feature_type="boolean").status == 201
    duplicate = entitle(tenant, plan_id=plan, feature_id=flag["id"], feature_type="boolean")
    assert duplicate.status == 409
    assert call("GET", "/api/v1/customers/usage", tenant=tenant).status == 400
