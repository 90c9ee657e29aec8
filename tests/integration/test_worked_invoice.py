"""One invoice with every adjustment at once, through the API and the scheduler, and its Stripe invoice item by item."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from billing.scope import Scope
from billing.services import invoice_sync
from tests.integration.test_stripe_customer_sync import connect
from tests.support.api import call
from tests.support.invoicing import fixed, invoices, make_queue, run_scheduler, setup, subscribe, usd_usage, use


@pytest.fixture
def queue(aws_endpoint):
    return make_queue(aws_endpoint)


def post(tenant, path: str, body: dict, status: int) -> dict:
    res = call("POST", path, tenant=tenant, body=body)
    assert res.status == status, res.text
    return dict(res.body)


def test_a_worked_invoice_with_every_adjustment(tenant, queue, stripe_emulator) -> None:
    key = f"sk_test_{uuid.uuid4().hex}"
    connect(tenant, key)
    ctx = setup(
        tenant,
        lambda mid: [usd_usage(mid, amount="0.10", display_name="API calls"), fixed("49.00", display_name="Platform")],
    )
    usage_price = next(p for p in ctx["plan"]["prices"] if p["type"] == "USAGE")
    for body in (
        {
            "name": "API 10% off",
            "type": "percentage",
            "cadence": "forever",
            "percentage_off": "10",
            "coupon_code": "API",
        },
        {
            "name": "Welcome",
            "type": "fixed",
            "cadence": "once",
            "amount_off": "5",
            "currency": "usd",
            "coupon_code": "W",
        },
        {"name": "Loyalty 15%", "type": "percentage", "cadence": "forever", "percentage_off": "15", "coupon_code": "L"},
    ):
        post(tenant, "/api/v1/coupons", body, 201)
    post(tenant, "/api/v1/taxes/rates", {"code": "VAT", "name": "VAT 20%", "percentage_value": "20"}, 201)
    post(
        tenant,
        "/api/v1/taxes/rates",
        {"code": "FEE", "name": "Filing fee", "tax_rate_type": "fixed", "fixed_value": "0.50"},
        201,
    )
    start = (datetime.now(UTC) - timedelta(days=40)).replace(microsecond=0)
    subscribe(
        tenant,
        ctx,
        start_date=start.isoformat(),
        subscription_coupons=[
            {"coupon_code": "API", "price_id": usage_price["id"]},
            {"coupon_code": "W"},
            {"coupon_code": "L"},
        ],
        tax_rate_overrides=[
            {"tax_rate_code": "VAT", "currency": "usd", "priority": 1},
            {"tax_rate_code": "FEE", "currency": "usd", "priority": 2},
        ],
    )
    use(tenant, ctx, "1234.5", (start + timedelta(days=3)).isoformat())
    customer = ctx["customer"]["id"]
    paid = post(tenant, "/api/v1/wallets", {"customer_id": customer, "currency": "usd", "name": "Paid credits"}, 200)
    promo = post(tenant, "/api/v1/wallets", {"customer_id": customer, "currency": "usd", "name": "Promo"}, 200)
    post(
        tenant,
        f"/api/v1/wallets/{paid['id']}/top-up",
        {
            "credits_to_add": "30",
            "priority": 1,
            "transaction_reason": "PURCHASED_CREDIT_DIRECT",
            "expiry_date_utc": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        },
        200,
    )
    post(
        tenant,
        f"/api/v1/wallets/{promo['id']}/top-up",
        {"credits_to_add": "20.005", "priority": 2, "transaction_reason": "FREE_CREDIT_GRANT"},
        200,
    )

    assert run_scheduler(queue, datetime.now(UTC), tenant) == 1
    [inv] = invoices(tenant)
    got = call("GET", f"/api/v1/invoices/{inv['id']}", tenant=tenant).body
    assert (got["subtotal"], got["total_discount"], got["total_prepaid_credits_applied"], got["total_tax"]) == (
        "172.45",
        "40.62",
        "50.00",
        "16.87",
    )
    assert got["total"] == got["amount_due"] == "98.70"
    assert [(a["discounted_amount"], a["original_price"]) for a in got["coupon_applications"]] == [
        ("12.35", "123.45"),
        ("5.00", "160.10"),
        ("23.27", "155.10"),
    ]
    assert [a["amount"] for a in got["credit_applications"]] == ["30.00", "20.00"]
    assert [(t["taxable_amount"], t["tax_amount"]) for t in got["taxes"]] == [("81.83", "16.37"), ("81.83", "0.50")]
    promo_now = call("GET", f"/api/v1/wallets/{promo['id']}", tenant=tenant).body
    assert promo_now["credit_balance"] == "0.005"  # half a cent of credit cannot pay anything: it stays

    invoice_sync.sync_invoice(Scope(*tenant), inv["id"])
    [stripe_inv] = stripe_emulator.objects(key, "invoice")
    items = [
        (i["amount"], i["description"])
        for i in stripe_emulator.objects(key, "invoiceitem")
        if i.get("invoice") == stripe_inv["id"]
    ]
    assert sorted(a for a, _ in items) == sorted([4900, 12345, -1235, -500, -2327, -3000, -2000, 1637, 50])
    assert stripe_inv["total"] == sum(a for a, _ in items) == 9870
    descriptions = {text for _, text in items}
    assert "VAT 20% (20% of 81.83 USD)" in descriptions and "Prepaid credits: Promo" in descriptions
