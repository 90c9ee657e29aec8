"""Tax rates and associations through the API: which rates a subscription's invoices carry, total_tax and the applied
taxes on the invoice, one Stripe item per tax."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from billing.scope import Scope
from billing.services import invoice_sync
from tests.integration.test_stripe_customer_sync import connect
from tests.support.api import call
from tests.support.invoicing import fixed, invoices, make_queue, run_scheduler, setup, subscribe


@pytest.fixture
def queue(aws_endpoint):
    return make_queue(aws_endpoint)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def rate(tenant, code: str, **fields) -> dict:
    res = call("POST", "/api/v1/taxes/rates", tenant=tenant, body={"code": code, "name": code, **fields})
    assert res.status == 201, res.text
    return dict(res.body)


def associate(tenant, **fields) -> dict:
    res = call("POST", "/api/v1/taxes/associations", tenant=tenant, body=fields)
    assert res.status == 200, res.text
    return dict(res.body)


def test_tax_rate_crud_and_validation(tenant) -> None:
    vat = rate(tenant, "VAT20", tax_rate_type="percentage", percentage_value="20")
    assert vat["tax_rate_status"] == "ACTIVE" and vat["percentage_value"] == "20" and vat["scope"] == "INTERNAL"
    assert call("GET", f"/api/v1/taxes/rates/{vat['id']}", tenant=tenant).body["code"] == "VAT20"
    listed = call("GET", "/api/v1/taxes/rates", tenant=tenant, query={"taxrate_codes": "VAT20"}).body
    assert [r["id"] for r in listed["items"]] == [vat["id"]]
    for bad in (
        {"percentage_value": "120"},
        {"tax_rate_type": "fixed"},
        {"tax_rate_type": "percentage", "percentage_value": "5", "inclusive": True},
    ):
        res = call("POST", "/api/v1/taxes/rates", tenant=tenant, body={"code": "X", "name": "x", **bad})
        assert res.status == 400, (bad, res.text)
    assert (
        call(
            "POST",
            "/api/v1/taxes/rates",
            tenant=tenant,
            body={"code": "VAT20", "name": "again", "percentage_value": "1"},
        ).status
        == 409
    )
    renamed = call("PUT", f"/api/v1/taxes/rates/{vat['id']}", tenant=tenant, body={"name": "VAT standard"})
    assert renamed.status == 200 and renamed.body["name"] == "VAT standard"
    assoc = associate(tenant, tax_rate_code="VAT20", entity_type="tenant", currency="usd", priority=3)
    assert assoc["tax_rate"]["id"] == vat["id"] and assoc["entity_id"] == tenant[0]
    got = call("GET", f"/api/v1/taxes/associations/{assoc['id']}", tenant=tenant).body
    assert got["priority"] == 3
    updated = call("PUT", f"/api/v1/taxes/associations/{assoc['id']}", tenant=tenant, body={"priority": 1}).body
    assert updated["priority"] == 1
    listed = call("GET", "/api/v1/taxes/associations", tenant=tenant, query={"entity_type": "tenant"}).body
    assert [a["id"] for a in listed["items"]] == [assoc["id"]]
    assert call("DELETE", f"/api/v1/taxes/associations/{assoc['id']}", tenant=tenant).status == 200
    assert call("DELETE", f"/api/v1/taxes/rates/{vat['id']}", tenant=tenant).status == 204
    assert call("POST", "/api/v1/taxes/associations", tenant=tenant, body={"tax_rate_code": "VAT20"}).status == 404


def test_taxes_resolve_by_level_and_reach_the_invoice_and_stripe(tenant, queue, stripe_emulator) -> None:
    key = f"sk_test_{uuid.uuid4().hex}"
    connect(tenant, key)
    rate(tenant, "STATE", percentage_value="8.875")
    rate(tenant, "FEE", tax_rate_type="fixed", fixed_value="0.25")
    rate(tenant, "TENANTVAT", percentage_value="20")
    associate(tenant, tax_rate_code="TENANTVAT", entity_type="tenant")
    ctx = setup(tenant, lambda mid: [fixed("19.99")])
    # the customer's own rates win over the tenant's
    for code, priority in (("FEE", 2), ("STATE", 1)):
        associate(
            tenant,
            tax_rate_code=code,
            entity_type="customer",
            entity_id=ctx["customer"]["id"],
            currency="usd",
            priority=priority,
        )
    sub = subscribe(tenant, ctx, start_date="2026-01-15T00:00:00Z")
    assert [t["code"] for t in sub["tax_rates"]] == ["STATE", "FEE"]
    assert run_scheduler(queue, at("2026-02-15T02:00:00Z"), tenant) == 1
    [inv] = invoices(tenant)
    got = call("GET", f"/api/v1/invoices/{inv['id']}", tenant=tenant).body
    # 8.875% of 19.99 = 1.7741125 -> 1.77; + 0.25 fixed
    assert got["total_tax"] == "2.02" and got["total"] == "22.01" and got["amount_due"] == "22.01"
    assert [(t["tax_rate"]["code"], t["taxable_amount"], t["tax_amount"]) for t in got["taxes"]] == [
        ("STATE", "19.99", "1.77"),
        ("FEE", "19.99", "0.25"),
    ]
    invoice_sync.sync_invoice(Scope(*tenant), inv["id"])
    [stripe_inv] = stripe_emulator.objects(key, "invoice")
    assert stripe_inv["total"] == 2201
    amounts = sorted(
        i["amount"] for i in stripe_emulator.objects(key, "invoiceitem") if i.get("invoice") == stripe_inv["id"]
    )
    assert amounts == [25, 177, 1999]


def test_overrides_at_creation_and_subscription_associations(tenant, queue) -> None:
    rate(tenant, "GST", percentage_value="10")
    rate(tenant, "PST", percentage_value="7")
    rate(tenant, "TENANTVAT", percentage_value="20")
    associate(tenant, tax_rate_code="TENANTVAT", entity_type="tenant")
    res = call(
        "POST",
        "/api/v1/customers",
        tenant=tenant,
        body={
            "external_id": "ov",
            "name": "Overridden",
            "tax_rate_overrides": [{"tax_rate_code": "GST", "currency": "usd"}],
        },
    )
    assert res.status == 201, res.text
    customer_taxes = call(
        "GET",
        "/api/v1/taxes/associations",
        tenant=tenant,
        query={"entity_type": "customer", "entity_id": res.body["id"]},
    ).body["items"]
    assert [a["tax_rate"]["code"] for a in customer_taxes] == ["GST"]
    ctx = setup(tenant, lambda mid: [fixed("100.00")], customer="plain")
    sub = subscribe(
        tenant, ctx, start_date="2026-01-15T00:00:00Z", tax_rate_overrides=[{"tax_rate_code": "PST", "currency": "usd"}]
    )
    assert [t["code"] for t in sub["tax_rates"]] == ["PST"]
    extra = associate(tenant, tax_rate_code="GST", entity_type="subscription", entity_id=sub["id"], currency="usd")
    assert [t["code"] for t in call("GET", f"/api/v1/subscriptions/{sub['id']}", tenant=tenant).body["tax_rates"]] == [
        "PST",
        "GST",
    ]
    run_scheduler(queue, at("2026-02-15T02:00:00Z"), tenant)
    assert call("DELETE", f"/api/v1/taxes/associations/{extra['id']}", tenant=tenant).status == 200
    run_scheduler(queue, at("2026-03-15T02:00:00Z"), tenant)
    mine = sorted((i for i in invoices(tenant) if i["subscription_id"] == sub["id"]), key=lambda i: i["period_start"])
    assert [(i["total_tax"], i["total"]) for i in mine] == [
        ("17.00", "117.00"),
        ("7.00", "107.00"),
    ]
    bad = call(
        "POST",
        "/api/v1/subscriptions",
        tenant=tenant,
        body={
            "customer_id": ctx["customer"]["id"],
            "plan_id": ctx["plan"]["id"],
            "currency": "usd",
            "billing_period": "MONTHLY",
            "tax_rate_overrides": [{"tax_rate_code": "NOPE", "currency": "usd"}],
        },
    )
    assert bad.status == 404
