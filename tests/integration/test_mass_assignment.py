"""Mass assignment: server-owned fields in a request body (`id`, `tenant_id`, `environment_id`, `status`,
`amount_paid`, timestamps, `version`) never take effect, on creates and on updates."""

from __future__ import annotations

import pytest

from tests.support.api import call

FORGED = {
    "id": "cust_01AAAAAAAAAAAAAAAAAAAAAAAA",
    "tenant_id": "tenant_victim",
    "environment_id": "env_victim",
    "status": "archived",
    "created_at": "2000-01-01T00:00:00Z",
    "updated_at": "2000-01-01T00:00:00Z",
    "created_by": "someone-else",
    "version": 99,
    "amount_paid": "1000000.00",
    "invoice_status": "VOIDED",
    "payment_status": "SUCCEEDED",
}

CREATES = [
    ("/api/v1/customers", {"external_id": "mass-1", "name": "Mass"}),
    ("/api/v1/features", {"name": "Seats", "type": "static"}),
    ("/api/v1/plans", {"name": "Plan"}),
]


def _assert_server_owned(body: dict, tenant: tuple[str, str]) -> None:
    assert body["id"] != FORGED["id"]
    assert body["tenant_id"] == tenant[0] and body["environment_id"] == tenant[1]
    assert body["status"] == "published"
    assert body["created_at"] != FORGED["created_at"] and body.get("created_by") != "someone-else"


@pytest.mark.parametrize(("path", "body"), CREATES, ids=[c[0] for c in CREATES])
def test_creates_ignore_server_owned_fields(tenant, path, body):
    res = call("POST", path, tenant=tenant, body={**body, **FORGED})
    assert res.status == 201, res.text
    _assert_server_owned(res.body, tenant)
    got = call("GET", f"{path}/{res.body['id']}", tenant=tenant)
    assert got.status == 200
    _assert_server_owned(got.body, tenant)
    assert call("GET", f"{path}/{FORGED['id']}", tenant=tenant).status == 404


@pytest.mark.parametrize(("path", "body"), CREATES, ids=[c[0] for c in CREATES])
def test_updates_ignore_server_owned_fields(tenant, path, body):
    created = call("POST", path, tenant=tenant, body=body).body
    res = call("PUT", f"{path}/{created['id']}", tenant=tenant, body={"name": "Renamed", **FORGED})
    assert res.status == 200, res.text
    assert res.body["name"] == "Renamed"
    assert res.body["id"] == created["id"]
    _assert_server_owned(res.body, tenant)
    assert res.body["created_at"] == created["created_at"]


def test_a_subscription_body_cannot_set_its_status_or_tenant(tenant):
    from tests.support.invoicing import fixed, setup

    ctx = setup(tenant, lambda mid: [fixed("20.00")])
    res = call(
        "POST",
        "/api/v1/subscriptions",
        tenant=tenant,
        body={
            "customer_id": ctx["customer"]["id"],
            "plan_id": ctx["plan"]["id"],
            "currency": "usd",
            "billing_period": "MONTHLY",
            **FORGED,
            "subscription_status": "cancelled",
        },
    )
    assert res.status == 201, res.text
    assert res.body["subscription_status"] == "active"
    assert res.body["tenant_id"] == tenant[0] and res.body["id"] != FORGED["id"]
