# ruff: noqa: F811 - pytest fixtures imported from the ledger tests are parameters here
"""Refunds and disputes made at Stripe reach our invoices: amount_paid is net, and reordered events converge."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from billing.domain.money import to_minor_units
from billing.scope import Scope
from tests.integration.test_ledger import (  # noqa: F401 - fixtures
    VISA,
    customer_with_card,
    queue,
    settle,
    stripe_env,
    stripe_invoices_of,
    stripe_key,
    sync,
)
from tests.integration.test_payments import invoice_of, payments_of
from tests.integration.test_stripe_invoice_sync import finalized_invoice
from tests.integration.test_webhooks import loopback, queues  # noqa: F401 - fixtures
from tests.support.api import call

# ---------------------------------------------------------------------------------------------- refunds, disputes


def paid_by_stripe(tenant, queue, stripe_env, stripe_emulator) -> dict[str, Any]:
    _client, queues_ = stripe_env
    inv = finalized_invoice(tenant, queue)
    customer_with_card(tenant, stripe_emulator, inv)
    sync(tenant, inv["id"])
    settle(stripe_emulator, queues_, lambda: invoice_of(tenant, inv["id"])["payment_status"] == "SUCCEEDED")
    assert invoice_of(tenant, inv["id"])["payment_status"] == "SUCCEEDED"
    return inv


def stripe_intent_of(stripe_emulator, key: str, invoice_id: str) -> str:
    [stripe_inv] = stripe_invoices_of(stripe_emulator, key, invoice_id)
    return str(stripe_inv["payment_intent"])


def test_refunds_net_the_amount_paid_in_any_order(tenant, queue, stripe_env, stripe_emulator, stripe_key):
    client, queues_ = stripe_env
    inv = paid_by_stripe(tenant, queue, stripe_env, stripe_emulator)
    total = Decimal(inv["total"])
    intent = stripe_intent_of(stripe_emulator, stripe_key, inv["id"])
    client.v1.refunds.create({"payment_intent": intent, "amount": 500})
    settle(stripe_emulator, queues_, lambda: invoice_of(tenant, inv["id"])["refunded_amount"] == "5.00")
    part = invoice_of(tenant, inv["id"])
    assert part["refunded_amount"] == "5.00" and Decimal(part["amount_paid"]) == total - Decimal("5.00")
    assert part["payment_status"] == "PARTIALLY_REFUNDED"
    [payment] = payments_of(tenant, destination_id=inv["id"])
    assert payment["payment_status"] == "PARTIALLY_REFUNDED"
    rest = to_minor_units(total, "usd") - 500
    client.v1.refunds.create({"payment_intent": intent, "amount": rest})
    settle(stripe_emulator, queues_, lambda: invoice_of(tenant, inv["id"])["payment_status"] == "REFUNDED")
    final = invoice_of(tenant, inv["id"])
    assert final["payment_status"] == "REFUNDED" and final["amount_paid"] == "0.00"
    assert final["refunded_amount"] == inv["total"]
    # every charge event again, in reverse order: nothing moves
    from billing.services import webhooks

    events = [e.to_dict() for e in client.v1.events.list({"limit": 100}).data if e.type.startswith("charge.")]
    for event in reversed(events):
        webhooks.process(Scope(*tenant), {**event, "id": event["id"] + "_again"}, source="test")
    assert invoice_of(tenant, inv["id"]) == final
    summary = call(
        "GET",
        "/api/v1/dashboard/summary",
        tenant=tenant,
        query={"start_time": _days_from_now(-60), "end_time": _days_from_now(60)},
    )
    assert summary.status == 200, summary.text
    [usd] = [r for r in summary.body["revenue"] if r["currency"] == "usd"]
    assert usd["refunded_total"] == inv["total"] and usd["collected_net_total"] == "0.00"


def _days_from_now(days: int) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_dispute_holds_the_money_until_it_is_won(tenant, queue, stripe_env, stripe_emulator, stripe_key):
    client, queues_ = stripe_env
    inv = finalized_invoice(tenant, queue)
    customer_with_card(tenant, stripe_emulator, inv, card="4000000000000259")  # Stripe's dispute test card
    sync(tenant, inv["id"])  # Stripe charges it, then the cardholder disputes the charge
    settle(stripe_emulator, queues_, lambda: invoice_of(tenant, inv["id"])["disputed_amount"] != "0.00")
    [stripe_inv] = stripe_invoices_of(stripe_emulator, stripe_key, inv["id"])
    assert stripe_inv["status"] == "paid"
    held = invoice_of(tenant, inv["id"])
    assert held["disputed_amount"] == inv["total"] and held["amount_paid"] == "0.00"
    assert held["payment_status"] == "PENDING"
    [dispute] = client.v1.disputes.list({"limit": 10}).data
    client.v1.disputes.update(dispute.id, {"evidence": {"uncategorized_text": "winning_evidence"}})
    settle(stripe_emulator, queues_, lambda: invoice_of(tenant, inv["id"])["disputed_amount"] == "0.00")
    won = invoice_of(tenant, inv["id"])
    assert won["disputed_amount"] == "0.00" and won["amount_paid"] == inv["total"]
    assert won["payment_status"] == "SUCCEEDED"
