"""Tenant isolation over every route of the template: a second tenant's key never reads or changes another's objects.

One tenant builds one object of every kind (through the API and the real scheduler); then, for every route that takes
an id, the other tenant calls it with those ids and must get 404, and the owner's objects must be unchanged. A route
added to the template without a case here fails ``test_every_route_with_an_id_is_covered``.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from tests.integration.test_stripe_customer_sync import connect
from tests.support.api import call, routes
from tests.support.invoicing import fixed, invoices, make_queue, run_scheduler, setup, subscribe, usd_usage, use

BODIES = {
    ("PUT", "/api/v1/features/{id}"): {"name": "taken over"},
    ("PUT", "/api/v1/plans/{id}"): {"name": "taken over"},
    ("PUT", "/api/v1/customers/{id}"): {"name": "taken over"},
    ("PUT", "/api/v1/connections/{id}"): {"name": "taken over"},
    ("POST", "/api/v1/subscriptions/{id}/cancel"): {"cancellation_type": "immediate"},
    ("PUT", "/api/v1/invoices/{id}/payment"): {"payment_status": "SUCCEEDED"},
    ("POST", "/api/v1/payments/customers/{customer_id}/setup/intent"): {"success_url": "https://example.com/ok"},
}


@pytest.fixture(scope="module")
def owned(aws_endpoint, stripe_emulator):
    """One of everything, owned by one tenant."""
    suffix = uuid.uuid4().hex[:10]
    tenant = (f"tenant_{suffix}", f"env_{suffix}")
    queue = make_queue(aws_endpoint)
    connection = connect(tenant, f"sk_test_{uuid.uuid4().hex}", customer_outbound=False)
    ctx = setup(tenant, lambda mid: [usd_usage(mid), fixed("20.00")])
    sub = subscribe(tenant, ctx, start_date="2026-01-15T00:00:00Z")
    use(tenant, ctx, 100, "2026-01-20T08:00:00Z")
    assert run_scheduler(queue, datetime(2026, 2, 15, 2, tzinfo=UTC), tenant) == 1
    [invoice] = [i for i in invoices(tenant) if i["billing_reason"] == "SUBSCRIPTION_CYCLE"]
    payment = call(
        "POST",
        "/api/v1/payments",
        tenant=tenant,
        body={
            "destination_type": "INVOICE",
            "destination_id": invoice["id"],
            "payment_method_type": "OFFLINE",
            "amount": "1.00",
            "currency": "usd",
        },
    )
    assert payment.status == 201, payment.text
    feature = call("POST", "/api/v1/features", tenant=tenant, body={"name": "Seats", "type": "static"})
    assert feature.status == 201, feature.text
    plan = ctx["plan"]
    ids = {
        "/api/v1/features/{id}": {"id": feature.body["id"]},
        "/api/v1/meters/{id}": {"id": ctx["meter"]["id"]},
        "/api/v1/plans/{id}": {"id": plan["id"]},
        "/api/v1/prices/{id}": {"id": plan["prices"][0]["id"]},
        "/api/v1/customers/{id}": {"id": ctx["customer"]["id"]},
        "/api/v1/customers/external/{external_id}": {"external_id": ctx["customer"]["external_id"]},
        "/api/v1/connections/{id}": {"id": connection["id"]},
        "/api/v1/subscriptions/{id}": {"id": sub["id"]},
        "/api/v1/invoices/{id}": {"id": invoice["id"]},
        "/api/v1/payments/{id}": {"id": payment.body["id"]},
        "/api/v1/customers/{id}/payment-methods": {"id": ctx["customer"]["id"]},
        "/api/v1/payments/customers/{customer_id}/methods": {"customer_id": ctx["customer"]["id"]},
        "/api/v1/payments/customers/{customer_id}/setup/intent": {"customer_id": ctx["customer"]["id"]},
    }
    return tenant, ids


def _cases():
    out = []
    for route, _ in routes():
        if "{" not in route.path:
            continue
        out.append((route.method, route.path))
    return sorted(set(out))


def _fill(path: str, params: dict[str, str]) -> str:
    for key, value in params.items():
        path = path.replace("{" + key + "}", value)
    return path


def _template_of(path: str) -> str:
    for suffix in ("/cancel", "/finalize", "/void", "/payment"):
        if path.endswith(suffix) and path.count("{") == 1:
            return path[: -len(suffix)]
    return path


def test_every_route_with_an_id_is_covered(owned):
    _tenant, ids = owned
    missing = [f"{m} {p}" for m, p in _cases() if _template_of(p) not in ids]
    assert not missing, f"routes without a tenant-isolation case: {missing}"


@pytest.mark.parametrize(("method", "path"), _cases(), ids=[f"{m} {p}" for m, p in _cases()])
def test_another_tenant_gets_404_and_changes_nothing(owned, other_tenant, method, path):
    tenant, ids = owned
    params = ids[_template_of(path)]
    assert params is not None
    concrete = _fill(path, params)
    readable = any(r.method == "GET" and r.path == _template_of(path) for r, _ in routes())
    before = call("GET", _fill(_template_of(path), params), tenant=tenant) if method != "GET" and readable else None
    res = call(method, concrete, tenant=other_tenant, body=BODIES.get((method, path)))
    assert res.status == 404, f"{method} {concrete} as another tenant answered {res.status}: {res.text}"
    assert res.body["code"] == "not_found"
    if before is not None and before.status == 200:
        after = call("GET", _fill(_template_of(path), params), tenant=tenant)
        assert json.loads(after.text) == json.loads(before.text), f"{method} {concrete} changed the owner's object"


def test_lists_and_searches_show_nothing_of_another_tenant(owned, other_tenant):
    checked = []
    for route, _ in routes():
        if "{" in route.path or route.method not in ("GET", "POST") or not route.path.endswith(("s", "/search")):
            continue
        if route.method == "POST" and not route.path.endswith("/search"):
            continue
        query = {"entity_type": "customer", "entity_id": owned[1]["/api/v1/customers/{id}"]["id"]}
        res = call(
            route.method,
            route.path,
            tenant=other_tenant,
            body={} if route.method == "POST" else None,
            query=query if route.path.endswith("/mappings") else None,
        )
        assert res.status == 200, f"{route.method} {route.path}: {res.status} {res.text}"
        assert res.body["items"] == [] and res.body["pagination"]["total"] == 0, route.path
        checked.append(route.path)
    # the owner's lists are not empty, so an empty answer above means isolation, not an empty table
    assert len(checked) >= 15, checked
    tenant, _ids = owned
    assert call("GET", "/api/v1/invoices", tenant=tenant).body["pagination"]["total"] >= 1
