"""Coupons through the API: Flexprice's fields and codes, redemptions counted exactly, discounts on invoices and on the
Stripe invoice."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing.domain.money import to_minor_units
from billing.scope import Scope
from billing.services import invoice_sync
from tests.integration.test_stripe_customer_sync import connect
from tests.support.api import call
from tests.support.invoicing import fixed, invoices, make_queue, run_scheduler, setup, subscribe, usd_usage, use


@pytest.fixture
def queue(aws_endpoint):
    return make_queue(aws_endpoint)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def coupon(tenant, **fields) -> dict:
    res = call("POST", "/api/v1/coupons", tenant=tenant, body={"name": "Promo", **fields})
    assert res.status == 201, res.text
    return dict(res.body)


def test_coupon_crud_and_validation(tenant) -> None:
    made = coupon(
        tenant,
        type="percentage",
        cadence="repeated",
        duration_in_periods=3,
        percentage_off="12.5",
        coupon_code="SPRING",
        max_redemptions=5,
    )
    assert made["id"].startswith("coupon_") and made["total_redemptions"] == 0 and made["percentage_off"] == "12.5"
    assert call("GET", f"/api/v1/coupons/{made['id']}", tenant=tenant).body["coupon_code"] == "SPRING"
    assert call("GET", "/api/v1/coupons/code/SPRING", tenant=tenant).body["id"] == made["id"]
    dup = call(
        "POST",
        "/api/v1/coupons",
        tenant=tenant,
        body={"name": "x", "type": "percentage", "cadence": "once", "percentage_off": "5", "coupon_code": "SPRING"},
    )
    assert dup.status == 409 and dup.body["code"] == "already_exists"
    for bad in (
        {"type": "fixed", "cadence": "once", "amount_off": "5"},  # no currency
        {"type": "percentage", "cadence": "once", "percentage_off": "101"},
        {"type": "percentage", "cadence": "repeated", "percentage_off": "5"},  # no duration
        {"type": "fixed", "cadence": "once", "amount_off": "5.001", "currency": "usd"},
        {"type": "bogus", "cadence": "once"},
    ):
        res = call("POST", "/api/v1/coupons", tenant=tenant, body={"name": "bad", **bad})
        assert res.status == 400, (bad, res.text)
        assert set(res.body) >= {"code", "message", "http_status_code", "details"}
    renamed = call("PUT", f"/api/v1/coupons/{made['id']}", tenant=tenant, body={"name": "Spring sale"})
    assert renamed.status == 200 and renamed.body["name"] == "Spring sale"
    found = call("POST", "/api/v1/coupons/search", tenant=tenant, body={"coupon_codes": ["SPRING"]}).body
    assert [c["id"] for c in found["items"]] == [made["id"]] and found["pagination"]["total"] == 1
    assert call("DELETE", f"/api/v1/coupons/{made['id']}", tenant=tenant).status == 200
    assert call("GET", "/api/v1/coupons/code/SPRING", tenant=tenant).status == 404


def test_discounts_on_the_invoice_and_on_stripe(tenant, queue, stripe_emulator) -> None:
    key = f"sk_test_{uuid.uuid4().hex}"
    connect(tenant, key)
    ctx = setup(tenant, lambda mid: [usd_usage(mid, amount="0.10"), fixed("20.00")])
    usage_price = next(p for p in ctx["plan"]["prices"] if p["type"] == "USAGE")
    line = coupon(tenant, type="percentage", cadence="forever", percentage_off="15", coupon_code="API15")
    whole = coupon(tenant, type="fixed", cadence="once", amount_off="3.33", currency="usd", coupon_code="WELCOME")
    sub = subscribe(
        tenant,
        ctx,
        start_date="2026-01-15T00:00:00Z",
        subscription_coupons=[{"coupon_code": "API15", "price_id": usage_price["id"]}, {"coupon_code": "WELCOME"}],
    )
    assert len(sub["coupon_associations"]) == 2
    use(tenant, ctx, 1234, "2026-01-20T08:00:00Z")  # 123.40 of usage + 20.00 fixed
    assert run_scheduler(queue, at("2026-02-15T02:00:00Z"), tenant) == 1
    [inv] = [i for i in invoices(tenant) if i["billing_reason"] == "SUBSCRIPTION_CYCLE"]
    got = call("GET", f"/api/v1/invoices/{inv['id']}", tenant=tenant).body
    # 15% of 123.40 = 18.51; then 3.33 off what is left: 143.40 - 18.51 - 3.33 = 121.56
    assert got["subtotal"] == "143.40" and got["total_discount"] == "21.84" and got["total"] == "121.56"
    assert got["amount_due"] == "121.56" and got["total_tax"] == "0.00"
    apps = {a["coupon_id"]: a for a in got["coupon_applications"]}
    assert apps[line["id"]]["discounted_amount"] == "18.51" and apps[line["id"]]["original_price"] == "123.40"
    assert apps[whole["id"]]["discounted_amount"] == "3.33" and apps[whole["id"]].get("invoice_line_item_id") is None
    usage_line = next(li for li in got["line_items"] if li["price_id"] == usage_price["id"])
    assert usage_line["line_item_discount"] == "18.51"
    assert sum(Decimal(li["invoice_level_discount"]) for li in got["line_items"]) == Decimal("3.33")
    for name, counted in ((line["id"], 1), (whole["id"], 1)):
        assert call("GET", f"/api/v1/coupons/{name}", tenant=tenant).body["total_redemptions"] == counted
    assoc = call("GET", f"/api/v1/coupons/associations/{sub['coupon_associations'][0]['id']}", tenant=tenant).body
    assert assoc["subscription_id"] == sub["id"] and assoc["coupon"]["id"] == line["id"]

    invoice_sync.sync_invoice(Scope(*tenant), inv["id"])
    [stripe_inv] = stripe_emulator.objects(key, "invoice")
    assert stripe_inv["total"] == to_minor_units(Decimal(got["total"]), "usd") == 12156
    items = sorted(
        (i["amount"], i["description"])
        for i in stripe_emulator.objects(key, "invoiceitem")
        if i.get("invoice") == stripe_inv["id"]
    )
    assert [a for a, _ in items] == [-1851, -333, 2000, 12340]
    assert any(text.startswith("Discount: Promo on") for _, text in items)

    # the next period: the "once" coupon is spent, the "forever" one goes on
    use(tenant, ctx, 100, "2026-02-20T08:00:00Z")
    assert run_scheduler(queue, at("2026-03-15T02:00:00Z"), tenant) == 1
    second = max(
        (i for i in invoices(tenant) if i["billing_reason"] == "SUBSCRIPTION_CYCLE"), key=lambda i: i["period_start"]
    )
    assert [a["coupon_id"] for a in second["coupon_applications"]] == [line["id"]]
    assert second["total_discount"] == "1.50" and second["total"] == "28.50"


def test_coupons_attached_later_and_removed(tenant, queue) -> None:
    ctx = setup(tenant, lambda mid: [fixed("10.00")])
    coupon(
        tenant, type="percentage", cadence="repeated", duration_in_periods=2, percentage_off="50", coupon_code="HALF"
    )
    sub = subscribe(tenant, ctx, start_date="2026-01-15T00:00:00Z")
    res = call(
        "POST",
        f"/api/v1/subscriptions/{sub['id']}/modify/execute",
        tenant=tenant,
        body={"type": "coupon", "coupon_params": {"action": "add", "coupon_code": "HALF"}},
    )
    assert res.status == 200, res.text
    [assoc] = res.body["subscription"]["coupon_associations"]
    for when in ("2026-02-15T02:00:00Z", "2026-03-15T02:00:00Z", "2026-04-15T02:00:00Z"):
        run_scheduler(queue, at(when), tenant)
    totals = [i["total"] for i in sorted(invoices(tenant), key=lambda i: i["period_start"])]
    assert totals == ["5.00", "5.00", "10.00"]  # repeated for 2 periods, from the period it was attached in
    removed = call(
        "POST",
        f"/api/v1/subscriptions/{sub['id']}/modify/execute",
        tenant=tenant,
        body={"type": "coupon", "coupon_params": {"action": "remove", "coupon_association_id": assoc["id"]}},
    )
    assert removed.status == 200 and removed.body["subscription"]["coupon_associations"][0]["status"] == "archived"
    bad = call(
        "POST",
        f"/api/v1/subscriptions/{sub['id']}/modify/execute",
        tenant=tenant,
        body={"type": "coupon", "coupon_params": {"action": "add", "coupon_code": "NOPE"}},
    )
    assert bad.status == 404


def test_a_fixed_coupon_in_another_currency_or_outside_its_window_is_refused(tenant) -> None:
    ctx = setup(tenant, lambda mid: [fixed("10.00")])
    coupon(tenant, type="fixed", cadence="once", amount_off="1", currency="eur", coupon_code="EURO")
    coupon(
        tenant,
        type="percentage",
        cadence="once",
        percentage_off="1",
        coupon_code="LATE",
        redeem_after="2999-01-01T00:00:00Z",
    )
    for code in ("EURO", "LATE"):
        res = call(
            "POST",
            "/api/v1/subscriptions",
            tenant=tenant,
            body={
                "customer_id": ctx["customer"]["id"],
                "plan_id": ctx["plan"]["id"],
                "currency": "usd",
                "billing_period": "MONTHLY",
                "subscription_coupons": [{"coupon_code": code}],
            },
        )
        assert res.status == 400, res.text


def test_two_subscriptions_race_for_the_last_redemption(tenant) -> None:
    ctx = setup(tenant, lambda mid: [fixed("10.00")])
    made = coupon(
        tenant, type="percentage", cadence="forever", percentage_off="10", coupon_code="LAST", max_redemptions=1
    )
    barrier = threading.Barrier(2)
    results: list[int] = []

    def subscribe_with_coupon() -> None:
        barrier.wait()
        res = call(
            "POST",
            "/api/v1/subscriptions",
            tenant=tenant,
            body={
                "customer_id": ctx["customer"]["id"],
                "plan_id": ctx["plan"]["id"],
                "currency": "usd",
                "billing_period": "MONTHLY",
                "subscription_coupons": [{"coupon_code": "LAST"}],
            },
        )
        results.append(res.status)

    threads = [threading.Thread(target=subscribe_with_coupon) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [201, 400]
    assert call("GET", f"/api/v1/coupons/{made['id']}", tenant=tenant).body["total_redemptions"] == 1
    subs = call("GET", "/api/v1/subscriptions", tenant=tenant).body["items"]
    assert len(subs) == 1  # the loser wrote nothing
