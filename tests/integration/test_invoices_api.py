"""The invoice API through its functions: get, list/search, finalize, void, preview, payment status, tenancy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.services import invoicing
from tests.support.api import call
from tests.support.invoicing import fixed, invoices, make_queue, run_scheduler, scope, setup, subscribe, usd_usage, use

MONEY = ("amount_due", "amount_paid", "amount_remaining", "subtotal", "total")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def queue(aws_endpoint):
    return make_queue(aws_endpoint)


@pytest.fixture
def billed(tenant, queue):
    """A subscription with two invoiced months (usage + fixed), and a second customer's subscription."""
    ctx = setup(tenant, lambda mid: [usd_usage(mid), fixed("20.00")])
    sub = subscribe(tenant, ctx, start_date="2026-01-15T00:00:00Z")
    other = call("POST", "/api/v1/customers", tenant=tenant, body={"external_id": "beta", "name": "B"}).body
    sub2 = subscribe(tenant, ctx, customer_id=other["id"], start_date="2026-02-01T00:00:00Z")
    use(tenant, ctx, 55, "2026-01-20T00:00:00Z")
    run_scheduler(queue, at("2026-03-16T00:00:00Z"), tenant)
    return {"ctx": ctx, "sub": sub, "sub2": sub2, "other": other}


def test_get_renders_flexprice_fields_with_money_as_strings(tenant, billed):
    sub = billed["sub"]
    first = invoices(tenant, subscription_id=sub["id"])[0]
    res = call("GET", f"/api/v1/invoices/{first['id']}", tenant=tenant)
    assert res.status == 200 and res.body == first
    inv = res.body
    assert inv["id"].startswith("inv_") and len(inv["id"]) == 30
    assert inv["invoice_status"] == "FINALIZED" and inv["payment_status"] == "PENDING"
    assert inv["billing_reason"] == "SUBSCRIPTION_CYCLE" and inv["invoice_type"] == "SUBSCRIPTION"
    assert inv["invoice_number"].startswith("INV-") and inv["finalized_at"]
    for field in MONEY:
        assert isinstance(inv[field], str)
    assert (inv["subtotal"], inv["total"], inv["amount_due"], inv["amount_paid"]) == ("25.50", "25.50", "25.50", "0.00")
    usage, fee = sorted(inv["line_items"], key=lambda li: li["price_type"], reverse=True)
    assert usage["price_type"] == "USAGE" and usage["quantity"] == "55" and usage["amount"] == "5.50"
    assert usage["meter_id"] == billed["ctx"]["meter"]["id"] and usage["invoice_id"] == inv["id"]
    assert fee["amount"] == "20.00" and fee["quantity"] == "1"
    assert call("GET", "/api/v1/invoices/inv_missing", tenant=tenant).status == 404


def test_list_and_search_filter_by_customer_subscription_status_and_period(tenant, billed):
    sub, sub2, other = billed["sub"], billed["sub2"], billed["other"]
    everything = invoices(tenant)
    assert len(everything) == 3  # Jan and Feb of the first subscription, Feb of the second
    mine = call("POST", "/api/v1/invoices/search", tenant=tenant, body={"subscription_id": sub["id"]}).body
    assert mine["pagination"]["total"] == 2
    theirs = call("GET", "/api/v1/invoices", tenant=tenant, query={"customer_id": other["id"]}).body
    assert [i["subscription_id"] for i in theirs["items"]] == [sub2["id"]]
    feb = call(
        "POST",
        "/api/v1/invoices/search",
        tenant=tenant,
        body={"period_start_gte": "2026-02-01T00:00:00Z", "period_end_lte": "2026-03-15T00:00:00Z"},
    ).body
    assert sorted(i["period_start"] for i in feb["items"]) == ["2026-02-01T00:00:00Z", "2026-02-15T00:00:00Z"]
    page = call("POST", "/api/v1/invoices/search", tenant=tenant, body={"limit": 1, "offset": 1, "order": "asc"})
    assert page.body["pagination"] == {"total": 3, "limit": 1, "offset": 1}
    assert page.body["items"][0]["id"] == sorted(i["id"] for i in everything)[1]
    call("POST", f"/api/v1/invoices/{everything[0]['id']}/void", tenant=tenant)
    voided = call("GET", "/api/v1/invoices", tenant=tenant, query={"invoice_status": "VOIDED"}).body
    assert [i["id"] for i in voided["items"]] == [everything[0]["id"]]
    both = call(
        "POST",
        "/api/v1/invoices/search",
        tenant=tenant,
        body={"invoice_status": ["FINALIZED", "VOIDED"], "payment_status": ["PENDING"]},
    ).body
    assert both["pagination"]["total"] == 3
    for bad in ({"invoice_status": ["PAID"]}, {"limit": 0}, {"period_start_gte": "soon"}, {"payment_status": "x"}):
        assert call("POST", "/api/v1/invoices/search", tenant=tenant, body=bad).status == 400, bad
    assert call("GET", "/api/v1/invoices", tenant=tenant, query={"limit": 5000}).status == 400


def test_void_rules(tenant, billed):
    inv = invoices(tenant)[0]
    res = call("POST", f"/api/v1/invoices/{inv['id']}/void", tenant=tenant)
    assert res.status == 200 and res.body["invoice_status"] == "VOIDED" and res.body["voided_at"]
    again = call("POST", f"/api/v1/invoices/{inv['id']}/void", tenant=tenant)
    assert again.status == 400 and again.body["code"] == "invalid_operation"
    paid = invoices(tenant)[1]
    call("PUT", f"/api/v1/invoices/{paid['id']}/payment", tenant=tenant, body={"payment_status": "SUCCEEDED"})
    assert call("POST", f"/api/v1/invoices/{paid['id']}/void", tenant=tenant).status == 400


def test_payment_status_moves_only_along_allowed_transitions(tenant, billed):
    inv = invoices(tenant)[0]
    path = f"/api/v1/invoices/{inv['id']}/payment"
    assert call("PUT", path, tenant=tenant, body={"payment_status": "FAILED"}).body["payment_status"] == "FAILED"
    assert call("PUT", path, tenant=tenant, body={"payment_status": "PENDING"}).status == 200
    short = call("PUT", path, tenant=tenant, body={"payment_status": "SUCCEEDED", "amount": "1.00"})
    assert short.status == 400
    done = call("PUT", path, tenant=tenant, body={"payment_status": "SUCCEEDED"})
    assert done.status == 200, done.text
    assert (done.body["amount_paid"], done.body["amount_remaining"]) == (inv["amount_due"], "0.00")
    assert done.body["paid_at"]
    back = call("PUT", path, tenant=tenant, body={"payment_status": "PENDING"})
    assert back.status == 400 and back.body["code"] == "invalid_operation"
    over = call("PUT", path, tenant=tenant, body={"payment_status": "OVERPAID", "amount": "100.00"})
    assert over.status == 200 and over.body["amount_paid"] == "100.00"
    assert call("PUT", path, tenant=tenant, body={"payment_status": "FAILED"}).status == 400
    for bad in ({}, {"payment_status": "PAID"}, {"payment_status": "SUCCEEDED", "amount": "-1"}):
        assert call("PUT", path, tenant=tenant, body=bad).status == 400


def test_finalize_a_draft_numbers_it_and_moves_the_subscription_on(tenant, queue):
    ctx = setup(tenant, lambda mid: [fixed("20.00")])
    sub = subscribe(tenant, ctx, start_date="2026-01-15T00:00:00Z")
    stored = invoicing.keys.subscriptions().get(scope(tenant), sub["id"])
    draft = invoicing.draft(scope(tenant), stored, at("2026-02-16T00:00:00Z"))  # as left by a crashed worker
    got = call("GET", f"/api/v1/invoices/{draft['id']}", tenant=tenant).body
    assert got["invoice_status"] == "DRAFT" and got["invoice_number"] is None
    res = call("POST", f"/api/v1/invoices/{draft['id']}/finalize", tenant=tenant)
    assert res.status == 200, res.text
    assert res.body["invoice_status"] == "FINALIZED" and res.body["invoice_number"] == "INV-000001"
    moved = call("GET", f"/api/v1/subscriptions/{sub['id']}", tenant=tenant).body
    assert moved["current_period_start"] == "2026-02-15T00:00:00Z"
    again = call("POST", f"/api/v1/invoices/{draft['id']}/finalize", tenant=tenant)
    assert again.status == 200 and again.body == res.body  # idempotent: a retry answers what the first call did
    # The worker then finds nothing more to do for that period.
    run_scheduler(queue, at("2026-02-16T00:00:00Z"), tenant)
    assert len(invoices(tenant)) == 1


def test_finalizing_a_zero_draft_marks_it_paid(tenant):
    ctx = setup(tenant, lambda mid: [usd_usage(mid)])
    sub = subscribe(tenant, ctx, start_date="2026-01-15T00:00:00Z")
    stored = invoicing.keys.subscriptions().get(scope(tenant), sub["id"])
    draft = invoicing.draft(scope(tenant), stored, at("2026-02-16T00:00:00Z"))
    res = call("POST", f"/api/v1/invoices/{draft['id']}/finalize", tenant=tenant)
    assert res.body["invoice_status"] == "FINALIZED" and res.body["total"] == "0.00"
    assert res.body["payment_status"] == "SUCCEEDED" and res.body["invoice_number"] == "INV-000001"


def test_preview_computes_the_current_period_without_storing_it(tenant):
    ctx = setup(tenant, lambda mid: [usd_usage(mid), fixed("20.00"), fixed("5.00", "ADVANCE")])
    start = (datetime.now(UTC) - timedelta(days=2)).replace(microsecond=0)
    sub = subscribe(tenant, ctx, start_date=start.isoformat())
    use(tenant, ctx, 42, (start + timedelta(hours=3)).isoformat())
    before = invoices(tenant)
    res = call("POST", "/api/v1/invoices/preview", tenant=tenant, body={"subscription_id": sub["id"]})
    assert res.status == 200, res.text
    preview = res.body
    assert preview["id"] is None and preview["invoice_status"] == "DRAFT"
    assert preview["period_start"] == sub["current_period_start"]
    assert sorted(li["amount"] for li in preview["line_items"]) == ["20.00", "4.20", "5.00"]
    assert preview["total"] == "29.20"
    assert invoices(tenant) == before
    hidden = call(
        "POST",
        "/api/v1/invoices/preview",
        tenant=tenant,
        body={"subscription_id": sub["id"], "hide_zero_charges_line_items": True},
    )
    assert len(hidden.body["line_items"]) == 3
    assert call("POST", "/api/v1/invoices/preview", tenant=tenant, body={}).status == 400
    assert call("POST", "/api/v1/invoices/preview", tenant=tenant, body={"subscription_id": "subs_x"}).status == 404


def test_tenant_isolation_on_every_invoice_endpoint(tenant, other_tenant, billed):
    inv = invoices(tenant)[0]
    iid = inv["id"]
    assert call("GET", f"/api/v1/invoices/{iid}", tenant=other_tenant).status == 404
    assert call("POST", f"/api/v1/invoices/{iid}/finalize", tenant=other_tenant).status == 404
    assert call("POST", f"/api/v1/invoices/{iid}/void", tenant=other_tenant).status == 404
    assert (
        call("PUT", f"/api/v1/invoices/{iid}/payment", tenant=other_tenant, body={"payment_status": "SUCCEEDED"}).status
        == 404
    )
    assert (
        call(
            "POST", "/api/v1/invoices/preview", tenant=other_tenant, body={"subscription_id": billed["sub"]["id"]}
        ).status
        == 404
    )
    assert call("GET", "/api/v1/invoices", tenant=other_tenant).body["pagination"]["total"] == 0
    assert (
        call(
            "POST", "/api/v1/invoices/search", tenant=other_tenant, body={"subscription_id": billed["sub"]["id"]}
        ).body["items"]
        == []
    )
    assert call("GET", f"/api/v1/invoices/{iid}", tenant=None).status == 401
    assert call("GET", f"/api/v1/invoices/{iid}", tenant=tenant).body == inv
