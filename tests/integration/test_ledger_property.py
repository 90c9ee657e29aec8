"""The ledger invariant under any interleaving: a stateful property test on the real parts.

Each example is one invoice of a customer with a saved card, its Stripe connection on the emulator delivering
duplicated, shuffled webhooks to the intake. Hypothesis interleaves: the Stripe sync (and the sweeper's retries),
OFFLINE payments (partial and full), CARD, PAYMENT_LINK pages completed or expired, void, manual settlement, payment on
the hosted invoice page, refunds, Stripe outages, webhook delivery and reconciliation. After every step, the money taken
for the invoice minus what was given back never exceeds what is due, and nothing is taken after a void. At the end,
once outages are over and every event has been applied, the ledger audit finds our invoice and Stripe's in agreement.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from decimal import Decimal
from typing import Any

import pytest
import stripe
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from billing import stripe_edge
from billing.domain.money import from_minor_units
from billing.scope import Scope
from billing.services import invoice_sync, ledger_audit, reconciliation, sync_queue
from billing.store import invoices as keys
from tests.integration.test_payments import pay, save_card
from tests.integration.test_webhooks import connect as connect_with_webhooks
from tests.integration.test_webhooks import drain, endpoint_secret, loopback, queues  # noqa: F401 - fixtures
from tests.support.api import call

VISA = "4242424242424242"
EXAMPLES = int(os.environ.get("LEDGER_PROPERTY_EXAMPLES", "6"))
STEPS = int(os.environ.get("LEDGER_PROPERTY_STEPS", "10"))
RAN: list[int] = []


@pytest.fixture
def stripe_key(stripe_emulator) -> str:
    return f"sk_test_{uuid.uuid4().hex}"


def _new_invoice(tenant, customer_id: str, total: Decimal, method: str) -> dict[str, Any]:
    scope = Scope(*tenant)
    invoice_id = f"inv_{uuid.uuid4().hex[:26].upper()}"
    now = "2026-02-01T01:00:00Z"
    record = {
        "id": invoice_id,
        "tenant_id": tenant[0],
        "environment_id": tenant[1],
        "customer_id": customer_id,
        "currency": "usd",
        "subtotal": total,
        "total": total,
        "amount_due": total,
        "amount_paid": Decimal("0.00"),
        "amount_remaining": total,
        "invoice_status": "FINALIZED",
        "payment_status": "PENDING",
        "collection_method": method,
        "invoice_number": f"INV-{uuid.uuid4().hex[:6]}",
        "billing_reason": "MANUAL",
        "line_items": [
            {
                "id": f"li_{uuid.uuid4().hex[:12]}",
                "amount": total,
                "quantity": Decimal(1),
                "price_type": "FIXED",
                "kind": "charge",
                "display_name": "Pro plan",
                "period_start": "2026-01-01T00:00:00Z",
                "period_end": "2026-02-01T00:00:00Z",
            }
        ],
        "period_start": "2026-01-01T00:00:00Z",
        "period_end": "2026-02-01T00:00:00Z",
        "finalized_at": now,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    repo = keys.invoices()
    outbox = {
        "PK": keys.sync_pk(scope),
        "SK": invoice_id,
        **keys.sync_keys(scope, invoice_id, now),
        "invoice_id": invoice_id,
        "tenant_id": tenant[0],
        "environment_id": tenant[1],
        "status": "pending",
        "created_at": now,
    }
    repo.create(scope, record, indexes=keys.invoice_indexes(scope, record), extra_ops=[repo.table.put_op(outbox)])
    return record


def test_collected_minus_refunded_never_exceeds_due_and_both_sides_converge(
    tenant,
    stripe_emulator,
    stripe_key,
    loopback,  # noqa: F811
    queues,  # noqa: F811
):
    connect_with_webhooks(tenant, stripe_key, secret=endpoint_secret(stripe_emulator, stripe_key, loopback, tenant))
    stripe_emulator.configure_webhooks(duplicate=True, shuffle=True, shuffle_window=0.05)
    client = stripe.StripeClient(stripe_key, base_addresses={"api": stripe_emulator.url})
    scope = Scope(*tenant)

    class Ledger(RuleBasedStateMachine):
        @initialize(cents=st.integers(min_value=500, max_value=9999), method=st.sampled_from(["auto", "send"]))
        def start(self, cents: int, method: str) -> None:
            external = f"c-{uuid.uuid4().hex[:10]}"
            res = call("POST", "/api/v1/customers", tenant=tenant, body={"external_id": external, "name": external})
            assert res.status == 201, res.text
            self.customer = res.body["id"]
            save_card(tenant, stripe_emulator, self.customer, VISA)
            self.total = Decimal(cents) / 100
            collection = "charge_automatically" if method == "auto" else "send_invoice"
            self.invoice = _new_invoice(tenant, self.customer, self.total, collection)
            self.declared = Decimal(0)  # manual settlements: money the operator says arrived
            self.links: list[dict[str, Any]] = []
            self.voided_before_any_money = False
            RAN.append(1)

        # ------------------------------------------------------------------ helpers
        def ours(self) -> dict[str, Any]:
            return keys.invoices().get(scope, self.invoice["id"])

        def stripe_invoices(self) -> list[dict[str, Any]]:
            return [
                i
                for i in stripe_emulator.objects(stripe_key, "invoice")
                if i["metadata"].get("flexprice_invoice_id") == self.invoice["id"]
            ]

        def charges(self) -> list[dict[str, Any]]:
            stripe_ids = {i["id"] for i in self.stripe_invoices()}
            out = []
            for pi in stripe_emulator.objects(stripe_key, "payment_intent"):
                if pi["status"] != "succeeded":
                    continue
                if pi["metadata"].get("flexprice_invoice_id") == self.invoice["id"] or pi.get("invoice") in stripe_ids:
                    out.append(pi)
            return out

        def stripe_net(self) -> Decimal:
            total = 0
            for pi in self.charges():
                received = int(pi.get("amount_received") or pi["amount"])
                refunded = sum(
                    int(c.get("amount_refunded") or 0)
                    for c in stripe_emulator.objects(stripe_key, "charge")
                    if c.get("payment_intent") == pi["id"]
                )
                total += received - refunded
            return from_minor_units(total, "usd")

        def offline(self) -> Decimal:
            res = call("GET", "/api/v1/payments", tenant=tenant, query={"destination_id": self.invoice["id"]})
            return sum(
                (
                    Decimal(p["amount"])
                    for p in res.body["items"]
                    if p["payment_method_type"] == "OFFLINE" and p["payment_status"] == "SUCCEEDED"
                ),
                Decimal(0),
            )

        # ------------------------------------------------------------------ rules
        @rule()
        def sync(self) -> None:
            with contextlib.suppress(Exception):
                sync_queue.handle_message(invoice_sync.message(scope, self.invoice["id"]))

        @rule(fraction=st.sampled_from([Decimal("0.25"), Decimal("1")]))
        def pay_offline(self, fraction: Decimal) -> None:
            current = self.ours()
            remaining = Decimal(current["amount_remaining"])
            amount = (remaining * fraction).quantize(Decimal("0.01"))
            if amount <= 0:
                return
            res = pay(tenant, {**current, "amount_remaining": str(amount)}, "OFFLINE")
            assert res.status in (201, 400, 409, 503), res.text

        @rule()
        def pay_card(self) -> None:
            current = self.ours()
            res = pay(tenant, {**current, "amount_remaining": str(current["amount_remaining"])}, "CARD")
            assert res.status in (201, 400, 409, 503), res.text

        @rule()
        def open_link(self) -> None:
            current = self.ours()
            res = pay(
                tenant,
                {**current, "amount_remaining": str(current["amount_remaining"])},
                "PAYMENT_LINK",
                success_url="https://app.example.com/paid",
            )
            assert res.status in (201, 400, 409, 503), res.text
            if res.status == 201 and res.body.get("gateway_metadata", {}).get("checkout_session_id"):
                self.links.append(res.body)

        @precondition(lambda self: bool(self.links))
        @rule(complete=st.booleans())
        def finish_link(self, complete: bool) -> None:
            link = self.links.pop(0)
            session = link["gateway_metadata"]["checkout_session_id"]
            try:
                if complete:
                    stripe_emulator.complete_checkout_session(session, card=VISA)
                else:
                    client.v1.checkout.sessions.expire(session)
            except Exception:
                pass

        @rule()
        def void(self) -> None:
            res = call("POST", f"/api/v1/invoices/{self.invoice['id']}/void", tenant=tenant, body={})
            assert res.status in (200, 400, 409, 503), res.text

        @rule()
        def settle_manually(self) -> None:
            current = self.ours()
            remaining = Decimal(current["amount_remaining"])
            path = f"/api/v1/invoices/{self.invoice['id']}/payment"
            res = call("PUT", path, tenant=tenant, body={"payment_status": "SUCCEEDED"})
            assert res.status in (200, 400, 409, 503), res.text
            if res.status == 200:
                self.declared += remaining

        @rule()
        def pay_hosted_page(self) -> None:
            for found in self.stripe_invoices():
                if found["status"] == "open":
                    with contextlib.suppress(Exception):
                        stripe_emulator.pay_hosted_invoice(found["id"], VISA)

        @rule(fraction=st.sampled_from([Decimal("0.5"), Decimal("1")]))
        def refund(self, fraction: Decimal) -> None:
            for pi in self.charges()[:1]:
                amount = int(int(pi.get("amount_received") or pi["amount"]) * fraction)
                with contextlib.suppress(stripe.StripeError):
                    client.v1.refunds.create({"payment_intent": pi["id"], "amount": amount})

        @rule()
        def outage(self) -> None:
            stripe_emulator.start_outage(kind="503")

        @rule()
        def outage_over(self) -> None:
            stripe_emulator.end_outage()

        @rule()
        def deliver(self) -> None:
            stripe_emulator.wait_for_webhooks(timeout=10)
            drain(queues.url)

        @rule()
        def reconcile(self) -> None:
            connection = stripe_edge.active_connection(scope)
            assert connection is not None
            with contextlib.suppress(Exception):
                reconciliation.reconcile_environment(scope, connection)

        # ------------------------------------------------------------------ the invariant
        @invariant()
        def never_more_than_due(self) -> None:
            if not hasattr(self, "invoice"):
                return
            taken = self.stripe_net() + self.offline() + self.declared
            assert taken <= self.total, f"collected {taken} for an invoice of {self.total}"
            current = self.ours()
            if current["invoice_status"] == "VOIDED":
                assert self.stripe_net() == 0 and self.offline() == 0 and self.declared == 0

        def teardown(self) -> None:
            if not hasattr(self, "invoice"):
                return
            stripe_emulator.end_outage()
            for _ in range(3):
                self.sync()
                stripe_emulator.wait_for_webhooks(timeout=10)
                drain(queues.url)
                self.reconcile()
                drain(queues.url)
            edge = stripe_edge.require(scope)
            row = ledger_audit.audit_invoice(scope, edge, self.ours())
            assert row.problems == [], row.as_dict()
            stripe_paid = [i for i in self.stripe_invoices() if i["status"] == "paid"]
            if stripe_paid:
                final = self.ours()
                paid_or_given_back = ("SUCCEEDED", "OVERPAID", "PARTIALLY_REFUNDED", "REFUNDED")
                assert final["payment_status"] in paid_or_given_back or Decimal(final.get("disputed_amount") or 0) > 0

    run_state_machine_as_test(
        Ledger,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
    stripe_emulator.configure_webhooks(duplicate=False, shuffle=False, drop_next=0)
    stripe_emulator.end_outage()
    print(f"ledger property: {len(RAN)} examples of up to {STEPS} steps")
    assert len(RAN) >= 1
