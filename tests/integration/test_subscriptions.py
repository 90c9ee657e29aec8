"""Subscriptions through their functions: create with price selection, get, list/search, cancel, usage view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.api import call
from tests.support.invoicing import fixed, invoices, setup, subscribe, usd_usage, use


def catalog_prices(meter_id):
    return [
        usd_usage(meter_id),
        fixed("49.00", "ADVANCE"),
        fixed("490.00", "ADVANCE", billing_period="ANNUAL"),
        usd_usage(meter_id, currency="eur"),
        fixed("10.00", billing_period="MONTHLY", billing_period_count=3),
    ]


def test_create_selects_prices_by_currency_and_period_and_bills_advance_at_once(tenant):
    ctx = setup(tenant, catalog_prices)
    sub = subscribe(tenant, ctx, currency="USD", start_date="2026-01-31T10:00:00Z")
    assert sub["id"].startswith("subs_")
    assert sub["subscription_status"] == "active" and sub["currency"] == "usd"
    assert sub["billing_anchor"] == sub["start_date"] == "2026-01-31T10:00:00Z"
    assert sub["current_period_start"] == "2026-01-31T10:00:00Z"
    assert sub["current_period_end"] == "2026-02-28T10:00:00Z"  # month-end anchor clamps
    assert sub["collection_method"] == "charge_automatically" and sub["billing_cycle"] == "anniversary"
    assert sub["cancel_at_period_end"] is False
    kept = sorted((li["price_type"], li["price"]["amount"]) for li in sub["line_items"])
    assert kept == [("FIXED", "49.00"), ("USAGE", "0.10")]  # written as GET /prices writes them
    assert call("GET", f"/api/v1/subscriptions/{sub['id']}", tenant=tenant).body == sub
    # The ADVANCE fixed charge is invoiced at creation: SUBSCRIPTION_CREATE, numbered, in period 0.
    (opening,) = invoices(tenant)
    assert opening["billing_reason"] == "SUBSCRIPTION_CREATE"
    assert opening["invoice_status"] == "FINALIZED" and opening["invoice_number"] == "INV-000001"
    assert opening["total"] == "49.00" and opening["amount_due"] == "49.00"
    assert opening["period_start"] == "2026-01-31T10:00:00Z"
    assert [li["amount"] for li in opening["line_items"]] == ["49.00"]


def test_no_matching_price_is_400_and_nothing_is_written(tenant):
    ctx = setup(tenant, catalog_prices)
    for fields in ({"currency": "gbp"}, {"billing_period": "WEEKLY"}, {"billing_period_count": 2}):
        res = call(
            "POST",
            "/api/v1/subscriptions",
            tenant=tenant,
            body={
                "customer_id": ctx["customer"]["id"],
                "plan_id": ctx["plan"]["id"],
                "currency": "usd",
                "billing_period": "MONTHLY",
                **fields,
            },
        )
        assert res.status == 400, res.text
        assert res.body["code"] == "validation_error"
    assert call("GET", "/api/v1/subscriptions", tenant=tenant).body["pagination"]["total"] == 0
    assert invoices(tenant) == []


def test_bad_inputs_are_400_or_404(tenant):
    ctx = setup(tenant, catalog_prices)
    base = {
        "customer_id": ctx["customer"]["id"],
        "plan_id": ctx["plan"]["id"],
        "currency": "usd",
        "billing_period": "MONTHLY",
    }
    bad = [
        {k: v for k, v in base.items() if k != "plan_id"},
        {k: v for k, v in base.items() if k != "customer_id"},
        {**base, "currency": "usdollars"},
        {**base, "billing_period": "FORTNIGHTLY"},
        {**base, "billing_period_count": -1},
        {**base, "billing_cycle": "lunar"},
        {**base, "collection_method": "cash"},
        {**base, "start_date": "yesterday"},
    ]
    for body in bad:
        res = call("POST", "/api/v1/subscriptions", tenant=tenant, body=body)
        assert res.status == 400, (body, res.text)
    assert call("POST", "/api/v1/subscriptions", tenant=tenant, raw_body=b"[1]").status == 400
    missing = call("POST", "/api/v1/subscriptions", tenant=tenant, body={**base, "plan_id": "plan_missing"})
    assert missing.status == 404
    assert (
        call(
            "POST",
            "/api/v1/subscriptions",
            tenant=tenant,
            body={**base, "customer_id": None, "external_customer_id": "nobody"},
        ).status
        == 404
    )
    assert call("GET", "/api/v1/subscriptions", tenant=tenant).body["pagination"]["total"] == 0
    assert call("GET", "/api/v1/subscriptions", tenant=tenant, query={"limit": 0}).status == 400
    assert (
        call("POST", "/api/v1/subscriptions/search", tenant=tenant, body={"subscription_status": ["gone"]}).status
        == 400
    )


def test_external_customer_id_calendar_cycle_and_send_invoice(tenant):
    ctx = setup(tenant, catalog_prices)
    sub = subscribe(
        tenant,
        ctx,
        customer_id=None,
        external_customer_id="acme",
        billing_cycle="calendar",
        collection_method="send_invoice",
        start_date="2026-03-10T12:00:00Z",
    )
    assert sub["customer_id"] == ctx["customer"]["id"]
    assert sub["current_period_start"] == "2026-03-10T12:00:00Z"
    assert sub["current_period_end"] == "2026-04-01T00:00:00Z"
    assert sub["collection_method"] == "send_invoice"


def test_list_and_search_filter_and_paginate(tenant):
    ctx = setup(tenant, catalog_prices)
    other = call("POST", "/api/v1/customers", tenant=tenant, body={"external_id": "beta", "name": "Beta"}).body
    first = subscribe(tenant, ctx)
    second = subscribe(tenant, ctx, customer_id=other["id"])
    third = subscribe(tenant, ctx)
    listed = call("GET", "/api/v1/subscriptions", tenant=tenant, query={"limit": 2, "offset": 0}).body
    assert listed["pagination"] == {"total": 3, "limit": 2, "offset": 0}
    assert [s["id"] for s in listed["items"]] == [third["id"], second["id"]]
    by_customer = call("GET", "/api/v1/subscriptions", tenant=tenant, query={"customer_id": other["id"]}).body
    assert [s["id"] for s in by_customer["items"]] == [second["id"]]
    call(
        "POST",
        f"/api/v1/subscriptions/{first['id']}/cancel",
        tenant=tenant,
        body={"cancellation_type": "immediate", "cancel_immediately_invoice_policy": "skip"},
    )
    found = call(
        "POST",
        "/api/v1/subscriptions/search",
        tenant=tenant,
        body={"subscription_status": ["cancelled"], "plan_id": ctx["plan"]["id"]},
    ).body
    assert [s["id"] for s in found["items"]] == [first["id"]]
    asc = call("POST", "/api/v1/subscriptions/search", tenant=tenant, body={"order": "asc", "offset": 1}).body
    assert [s["id"] for s in asc["items"]] == [second["id"], third["id"]]


def test_cancel_at_period_end_and_immediately(tenant):
    ctx = setup(tenant, catalog_prices)
    sub = subscribe(tenant, ctx)
    res = call(
        "POST",
        f"/api/v1/subscriptions/{sub['id']}/cancel",
        tenant=tenant,
        body={"cancellation_type": "end_of_period", "reason": "too dear"},
    )
    assert res.status == 200, res.text
    assert res.body["subscription_id"] == sub["id"] and res.body["status"] == "active"
    assert res.body["effective_date"] == sub["current_period_end"]
    got = call("GET", f"/api/v1/subscriptions/{sub['id']}", tenant=tenant).body
    assert got["cancel_at_period_end"] is True and got["cancel_at"] == sub["current_period_end"]
    now = call(
        "POST", f"/api/v1/subscriptions/{sub['id']}/cancel", tenant=tenant, body={"cancellation_type": "immediate"}
    )
    assert now.status == 200 and now.body["status"] == "cancelled"
    again = call(
        "POST", f"/api/v1/subscriptions/{sub['id']}/cancel", tenant=tenant, body={"cancellation_type": "immediate"}
    )
    assert again.status == 400 and again.body["code"] == "invalid_operation"
    for body in ({}, {"cancellation_type": "someday"}, {"cancellation_type": "scheduled_date"}):
        assert call("POST", f"/api/v1/subscriptions/{sub['id']}/cancel", tenant=tenant, body=body).status == 400
    assert (
        call(
            "POST", "/api/v1/subscriptions/subs_missing/cancel", tenant=tenant, body={"cancellation_type": "immediate"}
        ).status
        == 404
    )


def test_usage_view_prices_the_period_so_far(tenant):
    ctx = setup(
        tenant,
        lambda mid: [
            usd_usage(
                mid,
                billing_model="TIERED",
                amount=None,
                tier_mode="SLAB",
                tiers=[{"up_to": 100, "unit_amount": "1"}, {"up_to": None, "unit_amount": "0.5", "flat_amount": "2"}],
            )
        ],
    )
    start = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0)
    sub = subscribe(tenant, ctx, start_date=start.isoformat())
    use(tenant, ctx, 70, (start + timedelta(hours=1)).isoformat())
    use(tenant, ctx, 60, (start + timedelta(days=1)).isoformat())
    use(tenant, ctx, 500, (start - timedelta(days=1)).isoformat())  # before the period: not counted
    res = call("POST", "/api/v1/subscriptions/usage", tenant=tenant, body={"subscription_id": sub["id"]})
    assert res.status == 200, res.text
    (charge,) = res.body["charges"]
    assert charge["quantity"] == 130 and charge["meter_id"] == ctx["meter"]["id"]
    assert charge["display_amount"] == "117.00"  # 100 x 1 + 30 x 0.5 + 2
    assert res.body["display_amount"] == "117.00" and res.body["currency"] == "usd"
    assert call("POST", "/api/v1/subscriptions/usage", tenant=tenant, body={}).status == 400


def test_tenant_isolation_on_every_subscription_endpoint(tenant, other_tenant):
    ctx = setup(tenant, catalog_prices)
    sub = subscribe(tenant, ctx)
    sid = sub["id"]
    assert call("GET", f"/api/v1/subscriptions/{sid}", tenant=other_tenant).status == 404
    assert (
        call(
            "POST", f"/api/v1/subscriptions/{sid}/cancel", tenant=other_tenant, body={"cancellation_type": "immediate"}
        ).status
        == 404
    )
    assert call("POST", "/api/v1/subscriptions/usage", tenant=other_tenant, body={"subscription_id": sid}).status == 404
    assert call("GET", "/api/v1/subscriptions", tenant=other_tenant).body["pagination"]["total"] == 0
    assert call("POST", "/api/v1/subscriptions/search", tenant=other_tenant, body={}).body["items"] == []
    # The other tenant cannot subscribe to this tenant's plan or customer either.
    res = call(
        "POST",
        "/api/v1/subscriptions",
        tenant=other_tenant,
        body={
            "customer_id": ctx["customer"]["id"],
            "plan_id": ctx["plan"]["id"],
            "currency": "usd",
            "billing_period": "MONTHLY",
        },
    )
    assert res.status == 404
    assert call("GET", f"/api/v1/subscriptions/{sid}", tenant=None).status == 401
    assert call("GET", f"/api/v1/subscriptions/{sid}", tenant=tenant).body["subscription_status"] == "active"
