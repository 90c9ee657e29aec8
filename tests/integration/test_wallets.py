"""Prepaid wallets through the API: top-ups with reasons, expiry and priority, idempotent append-only transactions,
credits spent at finalize in priority and expiry order, never below zero under concurrency, and on Stripe."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.scope import Scope
from billing.services import invoice_sync, invoicing
from billing.store import invoices as keys
from tests.integration.test_stripe_customer_sync import connect
from tests.support.api import call
from tests.support.invoicing import fixed, invoices, make_queue, run_scheduler, setup, subscribe


@pytest.fixture
def queue(aws_endpoint):
    return make_queue(aws_endpoint)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def wallet(tenant, customer_id: str, **fields) -> dict:
    res = call("POST", "/api/v1/wallets", tenant=tenant, body={"customer_id": customer_id, "currency": "usd", **fields})
    assert res.status == 200, res.text
    return dict(res.body)


def top_up(tenant, wallet_id: str, **fields) -> dict:
    res = call("POST", f"/api/v1/wallets/{wallet_id}/top-up", tenant=tenant, body=fields)
    assert res.status == 200, res.text
    return dict(res.body)


def test_wallet_lifecycle(tenant) -> None:
    cust = call("POST", "/api/v1/customers", tenant=tenant, body={"external_id": "w1", "name": "W"}).body
    made = wallet(tenant, cust["id"], initial_credits_to_load="10", conversion_rate="2")
    assert made["credit_balance"] == "10" and made["balance"] == "20.00" and made["wallet_status"] == "active"
    first = top_up(
        tenant,
        made["id"],
        credits_to_add="5",
        transaction_reason="FREE_CREDIT_GRANT",
        idempotency_key="grant-1",
        priority=1,
    )
    again = top_up(
        tenant,
        made["id"],
        credits_to_add="5",
        transaction_reason="FREE_CREDIT_GRANT",
        idempotency_key="grant-1",
        priority=1,
    )
    assert first["wallet_transaction"]["id"] == again["wallet_transaction"]["id"]
    assert again["wallet"]["credit_balance"] == "15"  # credited once
    bought = top_up(tenant, made["id"], amount="3.00", transaction_reason="PURCHASED_CREDIT_DIRECT")
    assert bought["wallet_transaction"]["credit_amount"] == "1.5" and bought["wallet"]["balance"] == "33.00"
    refused = call(
        "POST",
        f"/api/v1/wallets/{made['id']}/top-up",
        tenant=tenant,
        body={"amount": "1", "transaction_reason": "PURCHASED_CREDIT_INVOICED"},
    )
    assert refused.status == 400
    bad = call("POST", f"/api/v1/wallets/{made['id']}/top-up", tenant=tenant, body={"transaction_reason": "X"})
    assert bad.status == 400
    balance = call("GET", f"/api/v1/wallets/{made['id']}/balance/real-time", tenant=tenant).body
    assert balance["real_time_credit_balance"] == "16.5"
    txs = call("GET", f"/api/v1/wallets/{made['id']}/transactions", tenant=tenant).body
    assert txs["pagination"]["total"] == 3 and {t["type"] for t in txs["items"]} == {"credit"}
    listed = call("GET", f"/api/v1/customers/{cust['id']}/wallets", tenant=tenant).body
    assert [w["id"] for w in listed] == [made["id"]]
    assert call("PUT", f"/api/v1/wallets/{made['id']}", tenant=tenant, body={"name": "Team"}).body["name"] == "Team"
    found = call("POST", "/api/v1/wallets/search", tenant=tenant, body={"wallet_ids": [made["id"]]}).body
    assert found["pagination"]["total"] == 1
    closed = call("POST", f"/api/v1/wallets/{made['id']}/terminate", tenant=tenant).body
    assert closed["wallet_status"] == "closed" and closed["credit_balance"] == "0"
    txs = call("GET", f"/api/v1/wallets/{made['id']}/transactions", tenant=tenant).body["items"]
    assert txs[0]["transaction_reason"] == "WALLET_TERMINATION" and txs[0]["credit_amount"] == "16.5"
    assert (
        call(
            "POST",
            f"/api/v1/wallets/{made['id']}/top-up",
            tenant=tenant,
            body={"credits_to_add": "1", "transaction_reason": "FREE_CREDIT_GRANT"},
        ).status
        == 400
    )


def test_credits_are_spent_at_finalize_in_order_and_reach_stripe(tenant, queue, stripe_emulator) -> None:
    key = f"sk_test_{uuid.uuid4().hex}"
    connect(tenant, key)
    ctx = setup(tenant, lambda mid: [fixed("50.00")])
    start = (datetime.now(UTC) - timedelta(days=40)).replace(microsecond=0)
    sub = subscribe(tenant, ctx, start_date=start.isoformat())
    cust = ctx["customer"]["id"]
    promo = wallet(tenant, cust, name="Promo")
    top_up(tenant, promo["id"], credits_to_add="30", transaction_reason="FREE_CREDIT_GRANT", priority=2)
    paid = wallet(tenant, cust, name="Paid")
    top_up(
        tenant,
        paid["id"],
        credits_to_add="15",
        transaction_reason="PURCHASED_CREDIT_DIRECT",
        priority=1,
        expiry_date_utc=(datetime.now(UTC) + timedelta(days=30)).isoformat(),
    )
    # expires before the invoice is finalized: leaves the balance at its expiry
    soon = datetime.now(UTC) + timedelta(seconds=8)
    top_up(
        tenant,
        paid["id"],
        credits_to_add="100",
        transaction_reason="FREE_CREDIT_GRANT",
        priority=0,
        expiry_date_utc=soon.isoformat(),
    )
    assert call("GET", f"/api/v1/wallets/{paid['id']}", tenant=tenant).body["credit_balance"] == "115"
    time.sleep(max((soon - datetime.now(UTC)).total_seconds(), 0) + 0.2)
    assert call("GET", f"/api/v1/wallets/{paid['id']}/balance/real-time", tenant=tenant).body["credit_balance"] == "15"
    assert run_scheduler(queue, datetime.now(UTC), tenant) == 1
    [inv] = invoices(tenant)
    assert inv["subscription_id"] == sub["id"]
    # 50.00: 15.00 from the priority-1 lot, then 30.00 from the priority-2 one... capped at what is left (35.00)
    assert inv["total_prepaid_credits_applied"] == "45.00" and inv["total"] == "5.00" and inv["amount_due"] == "5.00"
    assert [(a["wallet_id"], a["amount"]) for a in inv["credit_applications"]] == [
        (paid["id"], "15.00"),
        (promo["id"], "30.00"),
    ]
    assert call("GET", f"/api/v1/wallets/{paid['id']}", tenant=tenant).body["credit_balance"] == "0"
    assert call("GET", f"/api/v1/wallets/{promo['id']}", tenant=tenant).body["credit_balance"] == "0"
    paid_txs = call("GET", f"/api/v1/wallets/{paid['id']}/transactions", tenant=tenant).body["items"]
    reasons = [t["transaction_reason"] for t in paid_txs]
    assert "CREDIT_EXPIRED" in reasons and "INVOICE_PAYMENT" in reasons
    debit = next(t for t in paid_txs if t["transaction_reason"] == "INVOICE_PAYMENT")
    assert debit["reference_id"] == inv["id"] and debit["credit_amount"] == "15"
    invoice_sync.sync_invoice(Scope(*tenant), inv["id"])
    [stripe_inv] = stripe_emulator.objects(key, "invoice")
    assert stripe_inv["total"] == 500
    amounts = sorted(
        i["amount"] for i in stripe_emulator.objects(key, "invoiceitem") if i.get("invoice") == stripe_inv["id"]
    )
    assert amounts == [-3000, -1500, 5000]


def test_two_finalizes_spending_one_wallet_never_overspend(tenant) -> None:
    ctx = setup(tenant, lambda mid: [fixed("30.00")])
    subs = [subscribe(tenant, ctx, start_date="2026-01-15T00:00:00Z") for _ in range(2)]
    w = wallet(tenant, ctx["customer"]["id"], initial_credits_to_load="40")
    scope = Scope(*tenant)
    drafts = [
        invoicing.draft(scope, keys.subscriptions().get(scope, s["id"]), at("2026-02-15T02:00:00Z")) for s in subs
    ]
    barrier = threading.Barrier(2)
    done: list[dict] = []

    def finalize(draft: dict) -> None:
        barrier.wait()
        done.append(invoicing.finalize(scope, draft, at("2026-02-15T02:00:00Z")))

    threads = [threading.Thread(target=finalize, args=(d,)) for d in drafts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    applied = sorted(Decimal(str(i["total_prepaid_credits_applied"])) for i in done)
    assert applied == [Decimal("10.00"), Decimal("30.00")]  # 40 credits, spent once across both
    balance = call("GET", f"/api/v1/wallets/{w['id']}", tenant=tenant).body
    assert balance["credit_balance"] == "0"
    txs = call("GET", f"/api/v1/wallets/{w['id']}/transactions", tenant=tenant).body["items"]
    debits = [Decimal(t["credit_amount"]) for t in txs if t["type"] == "debit"]
    assert sorted(debits) == [Decimal(10), Decimal(30)]
    for t in txs:
        assert Decimal(t["credit_balance_after"]) >= 0


def test_the_preview_shows_discounts_credits_and_taxes_without_spending(tenant) -> None:
    ctx = setup(tenant, lambda mid: [fixed("100.00", cadence="ADVANCE")])
    coupon = call(
        "POST",
        "/api/v1/coupons",
        tenant=tenant,
        body={"name": "Ten", "type": "percentage", "cadence": "forever", "percentage_off": "10", "coupon_code": "TEN"},
    )
    assert coupon.status == 201, coupon.text
    assert (
        call(
            "POST", "/api/v1/taxes/rates", tenant=tenant, body={"code": "VAT", "name": "VAT", "percentage_value": "20"}
        ).status
        == 201
    )
    sub = subscribe(
        tenant,
        ctx,
        subscription_coupons=[{"coupon_code": "TEN"}],
        tax_rate_overrides=[{"tax_rate_code": "VAT", "currency": "usd"}],
    )
    w = wallet(tenant, ctx["customer"]["id"], initial_credits_to_load="25")
    preview = call("POST", "/api/v1/invoices/preview", tenant=tenant, body={"subscription_id": sub["id"]}).body
    # next period's advance charge 100.00: -10.00 coupon, -25.00 credits, +20% of 65.00 = 13.00
    assert (
        preview["subtotal"],
        preview["total_discount"],
        preview["total_prepaid_credits_applied"],
        preview["total_tax"],
        preview["total"],
    ) == ("100.00", "10.00", "25.00", "13.00", "78.00")
    assert call("GET", f"/api/v1/wallets/{w['id']}", tenant=tenant).body["credit_balance"] == "25"


def test_a_credits_payment_debits_the_wallet_with_the_invoice(tenant, queue) -> None:
    ctx = setup(tenant, lambda mid: [fixed("40.00")])
    subscribe(tenant, ctx, start_date="2026-01-15T00:00:00Z")
    assert run_scheduler(queue, at("2026-02-15T02:00:00Z"), tenant) == 1  # finalized with no wallet: 40.00 due
    [inv] = invoices(tenant)
    w = wallet(tenant, ctx["customer"]["id"])
    top_up(tenant, w["id"], credits_to_add="30", transaction_reason="PURCHASED_CREDIT_DIRECT")
    body = {
        "destination_type": "INVOICE",
        "destination_id": inv["id"],
        "payment_method_type": "CREDITS",
        "payment_method_id": w["id"],
        "amount": "35.00",
        "currency": "usd",
    }
    too_much = call("POST", "/api/v1/payments", tenant=tenant, body=body)
    assert too_much.status == 400 and too_much.body["details"]["available"] == "30.00"
    assert call("GET", f"/api/v1/wallets/{w['id']}", tenant=tenant).body["credit_balance"] == "30"
    paid = call("POST", "/api/v1/payments", tenant=tenant, body={**body, "amount": "30.00"})
    assert paid.status == 201, paid.text
    assert paid.body["payment_status"] == "SUCCEEDED" and paid.body["payment_method_type"] == "CREDITS"
    got = call("GET", f"/api/v1/invoices/{inv['id']}", tenant=tenant).body
    assert got["amount_paid"] == "30.00" and got["amount_remaining"] == "10.00"
    assert call("GET", f"/api/v1/wallets/{w['id']}", tenant=tenant).body["credit_balance"] == "0"
    [debit] = [
        t
        for t in call("GET", f"/api/v1/wallets/{w['id']}/transactions", tenant=tenant).body["items"]
        if t["type"] == "debit"
    ]
    assert debit["reference_type"] == "PAYMENT" and debit["reference_id"] == paid.body["id"]
