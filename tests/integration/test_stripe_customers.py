"""Customers both ways with Stripe: updates and archives go out through the sync queue, Stripe's changes come in,
deleted Stripe customers are replaced, and a sync resumed a day later creates nothing twice.

The sync worker and the webhook processing run in-process against the embedded AWS; Stripe is the emulator over
HTTP through the official SDK.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import stripe

from billing.scope import Scope
from billing.services import mappings, webhooks
from billing.settings import reset_settings
from stripe_emulator.server import StripeEmulator
from tests.integration.test_stripe_customer_sync import create_customer, queued_messages, run_worker
from tests.support.api import call


@pytest.fixture
def stripe_key(stripe_emulator) -> str:
    return f"sk_test_{uuid.uuid4().hex}"


def connect(tenant, key: str, *, outbound: bool = True, inbound: bool = False) -> dict:
    res = call(
        "POST",
        "/api/v1/connections",
        tenant=tenant,
        body={
            "name": "Stripe",
            "provider_type": "stripe",
            "encrypted_secret_data": {"secret_key": key, "webhook_secret": "whsec_test_0123456789"},
            "sync_config": {
                "customer": {"outbound": outbound, "inbound": inbound},
                "invoice": {"outbound": True},
            },
        },
    )
    assert res.status == 201, res.text
    return res.body


def sdk(emulator: StripeEmulator, key: str) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": emulator.url}, max_network_retries=0)


def synced(tenant, emulator: StripeEmulator, key: str, **fields) -> tuple[dict, dict]:
    """One of our customers and the Stripe customer the sync worker created for it."""
    customer = create_customer(tenant, external_id=f"ext-{uuid.uuid4().hex[:8]}", **fields)
    assert run_worker(queued_messages(tenant)) == {"batchItemFailures": []}
    [theirs] = [
        c for c in emulator.objects(key, "customer") if c["metadata"]["flexprice_customer_id"] == customer["id"]
    ]
    return customer, theirs


def customer_writes(emulator: StripeEmulator, stripe_id: str) -> int:
    return sum(1 for r in emulator.request_log() if r["method"] == "POST" and r["path"] == f"/v1/customers/{stripe_id}")


def events_of(emulator: StripeEmulator, key: str, kind: str) -> list[dict]:
    """Stripe's events of one type, oldest first."""
    return [e for e in reversed(emulator.objects(key, "event")) if e["type"] == kind]


def apply(tenant, event: dict) -> str:
    return webhooks.process(Scope(*tenant), event, source="webhook")


def stripe_customer_now(emulator: StripeEmulator, key: str, stripe_id: str) -> dict:
    return sdk(emulator, key).v1.customers.retrieve(stripe_id).to_dict()


# ---------------------------------------------------------------------------------------------- outbound (finding 11)


def test_an_update_reaches_the_stripe_customer_once(tenant, stripe_emulator, stripe_key):
    connect(tenant, stripe_key)
    customer, theirs = synced(tenant, stripe_emulator, stripe_key, email="old@acme.test")
    res = call(
        "PUT",
        f"/api/v1/customers/{customer['id']}",
        tenant=tenant,
        body={"name": "Acme Ltd", "email": "billing@acme.test", "address_city": "Lisbon", "address_country": "pt"},
    )
    assert res.status == 200, res.text
    messages = queued_messages(tenant)
    assert len(messages) == 1
    assert run_worker(messages) == {"batchItemFailures": []}
    now = stripe_customer_now(stripe_emulator, stripe_key, theirs["id"])
    assert (now["name"], now["email"]) == ("Acme Ltd", "billing@acme.test")
    assert now["address"]["city"] == "Lisbon" and now["address"]["country"] == "PT"
    assert now["metadata"]["flexprice_external_id"] == customer["external_id"]
    # the same message again (at-least-once), or a sync with nothing new: Stripe already says it, nothing is sent
    writes = customer_writes(stripe_emulator, theirs["id"])
    assert run_worker(messages) == {"batchItemFailures": []}
    assert customer_writes(stripe_emulator, theirs["id"]) == writes
    assert len(stripe_emulator.objects(stripe_key, "customer")) == 1


def test_archiving_flags_the_stripe_customer_and_keeps_it(tenant, stripe_emulator, stripe_key):
    connect(tenant, stripe_key)
    customer, theirs = synced(tenant, stripe_emulator, stripe_key)
    assert call("DELETE", f"/api/v1/customers/{customer['id']}", tenant=tenant).status == 204
    assert run_worker(queued_messages(tenant)) == {"batchItemFailures": []}
    now = stripe_customer_now(stripe_emulator, stripe_key, theirs["id"])
    assert not now.get("deleted") and now["metadata"]["flexprice_archived"] == "true"


def test_an_unlinked_customer_is_never_created_at_stripe_to_be_archived(tenant, stripe_emulator, stripe_key):
    connect(tenant, stripe_key)
    customer = create_customer(tenant)
    queued_messages(tenant)  # the create's sync is lost
    assert call("DELETE", f"/api/v1/customers/{customer['id']}", tenant=tenant).status == 204
    assert run_worker(queued_messages(tenant)) == {"batchItemFailures": []}
    assert stripe_emulator.objects(stripe_key, "customer") == []


def test_updates_of_a_linked_customer_go_out_even_with_outbound_customer_sync_off(tenant, stripe_emulator, stripe_key):
    """Card setup created its Stripe customer; hosted invoices are emailed to the address Stripe holds."""
    connect(tenant, stripe_key, outbound=False)
    customer = create_customer(tenant, email="old@acme.test")
    assert queued_messages(tenant) == []
    res = call(
        "POST",
        f"/api/v1/payments/customers/{customer['id']}/setup/intent",
        tenant=tenant,
        body={"success_url": "https://app.example.com/ok"},
    )
    assert res.status == 201, res.text
    call("PUT", f"/api/v1/customers/{customer['id']}", tenant=tenant, body={"email": "new@acme.test"})
    assert run_worker(queued_messages(tenant)) == {"batchItemFailures": []}
    [theirs] = stripe_emulator.objects(stripe_key, "customer")
    assert theirs["email"] == "new@acme.test"


# ---------------------------------------------------------------------------------------------- inbound (finding 11)


def test_stripe_changes_to_a_linked_customer_come_in_and_never_echo_out(tenant, stripe_emulator, stripe_key):
    connect(tenant, stripe_key, inbound=True)
    customer, theirs = synced(tenant, stripe_emulator, stripe_key, email="old@acme.test")
    writes = customer_writes(stripe_emulator, theirs["id"])
    sdk(stripe_emulator, stripe_key).v1.customers.update(
        theirs["id"],
        {
            "name": "Acme from the dashboard",
            "email": "ap@acme.test",
            "address": {"line1": "1 Main St", "city": "Porto"},
        },
    )
    updated = events_of(stripe_emulator, stripe_key, "customer.updated")[-1]
    assert apply(tenant, updated) == "updated"
    ours = call("GET", f"/api/v1/customers/{customer['id']}", tenant=tenant).body
    assert (ours["name"], ours["email"]) == ("Acme from the dashboard", "ap@acme.test")
    assert (ours["address_line1"], ours["address_city"]) == ("1 Main St", "Porto")
    # nothing goes back out: no sync was queued, and a sync now would find nothing to send
    assert queued_messages(tenant) == []
    from billing.services import stripe_sync

    stripe_sync.sync_customer(Scope(*tenant), customer["id"], refresh=True)
    assert customer_writes(stripe_emulator, theirs["id"]) == writes + 1  # only the dashboard's own update
    # the same event delivered again changes nothing
    assert apply(tenant, updated) == "duplicate"


def test_our_update_coming_back_from_stripe_ends_there(tenant, stripe_emulator, stripe_key):
    connect(tenant, stripe_key, inbound=True)
    customer, _ = synced(tenant, stripe_emulator, stripe_key)
    call("PUT", f"/api/v1/customers/{customer['id']}", tenant=tenant, body={"name": "Renamed here"})
    assert run_worker(queued_messages(tenant)) == {"batchItemFailures": []}
    echo = events_of(stripe_emulator, stripe_key, "customer.updated")[-1]
    assert echo["data"]["object"]["name"] == "Renamed here"
    assert apply(tenant, echo) == "unchanged"
    assert queued_messages(tenant) == []


def test_an_older_stripe_snapshot_never_overwrites_a_newer_one(tenant, stripe_emulator, stripe_key):
    connect(tenant, stripe_key, inbound=True)
    customer, theirs = synced(tenant, stripe_emulator, stripe_key)
    client = sdk(stripe_emulator, stripe_key)
    client.v1.customers.update(theirs["id"], {"email": "first@acme.test"})
    older = events_of(stripe_emulator, stripe_key, "customer.updated")[-1]
    newer = {**older, "id": f"evt_{uuid.uuid4().hex[:24]}", "created": older["created"] + 5}
    newer["data"] = {"object": {**older["data"]["object"], "email": "second@acme.test"}}
    assert apply(tenant, newer) == "updated"
    assert apply(tenant, older) == "ignored_older_than_ours"  # delivered late: Stripe's newer state stays
    assert call("GET", f"/api/v1/customers/{customer['id']}", tenant=tenant).body["email"] == "second@acme.test"


def test_a_change_made_here_after_stripes_is_not_overwritten_by_its_late_event(tenant, stripe_emulator, stripe_key):
    connect(tenant, stripe_key, inbound=True)
    customer, theirs = synced(tenant, stripe_emulator, stripe_key)
    sdk(stripe_emulator, stripe_key).v1.customers.update(theirs["id"], {"email": "stripe@acme.test"})
    late = events_of(stripe_emulator, stripe_key, "customer.updated")[-1]
    late = {**late, "created": late["created"] - 60}  # made at Stripe a minute before our change
    call("PUT", f"/api/v1/customers/{customer['id']}", tenant=tenant, body={"email": "ours@acme.test"})
    assert apply(tenant, late) == "ignored_older_than_ours"
    assert call("GET", f"/api/v1/customers/{customer['id']}", tenant=tenant).body["email"] == "ours@acme.test"
    assert run_worker(queued_messages(tenant)) == {"batchItemFailures": []}  # ours goes out and wins
    assert stripe_customer_now(stripe_emulator, stripe_key, theirs["id"])["email"] == "ours@acme.test"


# ---------------------------------------------------------------------------------------------- deleted (finding 10)


def test_customer_deleted_removes_the_link_and_the_next_sync_creates_a_fresh_customer(
    tenant, stripe_emulator, stripe_key
):
    connect(tenant, stripe_key)
    scope = Scope(*tenant)
    customer, theirs = synced(tenant, stripe_emulator, stripe_key)
    sdk(stripe_emulator, stripe_key).v1.customers.delete(theirs["id"])
    [deleted] = events_of(stripe_emulator, stripe_key, "customer.deleted")
    assert apply(tenant, deleted) == "unlinked"
    assert mappings.find(scope, "customer", customer["id"], "stripe") is None
    assert mappings.find_by_provider_id(scope, "stripe", "customer", theirs["id"]) is None
    listed = call(
        "GET",
        "/api/v1/integrations/mappings",
        tenant=tenant,
        query={"entity_type": "customer", "entity_id": customer["id"]},
    )
    assert listed.body["items"] == []
    # a later change syncs to a fresh Stripe customer instead of failing on the deleted one
    call("PUT", f"/api/v1/customers/{customer['id']}", tenant=tenant, body={"email": "after@acme.test"})
    assert run_worker(queued_messages(tenant)) == {"batchItemFailures": []}
    [fresh] = stripe_emulator.objects(stripe_key, "customer")
    assert fresh["id"] != theirs["id"] and fresh["email"] == "after@acme.test"
    assert mappings.find(scope, "customer", customer["id"], "stripe")["provider_entity_id"] == fresh["id"]
    # card setup uses it (201, not a 500)
    res = call(
        "POST",
        f"/api/v1/payments/customers/{customer['id']}/setup/intent",
        tenant=tenant,
        body={"success_url": "https://app.example.com/ok"},
    )
    assert res.status == 201, res.text
    assert apply(tenant, deleted) == "duplicate"


def test_a_deleted_customer_found_by_a_sync_is_replaced(tenant, stripe_emulator, stripe_key):
    """``customer.deleted`` never arrived: the sync that finds the Stripe customer deleted replaces it."""
    connect(tenant, stripe_key)
    customer, theirs = synced(tenant, stripe_emulator, stripe_key)
    sdk(stripe_emulator, stripe_key).v1.customers.delete(theirs["id"])
    call("PUT", f"/api/v1/customers/{customer['id']}", tenant=tenant, body={"name": "Still here"})
    assert run_worker(queued_messages(tenant)) == {"batchItemFailures": []}
    [fresh] = stripe_emulator.objects(stripe_key, "customer")
    assert fresh["id"] != theirs["id"] and fresh["name"] == "Still here"


# ---------------------------------------------------------------------------------------------- resumed (finding 8)


@pytest.fixture
def own_stripe(aws_endpoint) -> Iterator[StripeEmulator]:
    """A Stripe emulator of this test's own, as this environment's Stripe: its clock is moved a day forward."""
    emulator = StripeEmulator(port=0)
    emulator.start()
    previous = os.environ.get("STRIPE_API_BASE")
    os.environ["STRIPE_API_BASE"] = emulator.url
    reset_settings()
    yield emulator
    if previous is None:
        os.environ.pop("STRIPE_API_BASE", None)
    else:
        os.environ["STRIPE_API_BASE"] = previous
    reset_settings()
    emulator.stop()


def test_a_customer_sync_resumed_a_day_later_after_a_rename_creates_nothing_twice(tenant, own_stripe):
    key = f"sk_test_{uuid.uuid4().hex}"
    connect(tenant, key)
    customer = create_customer(tenant, external_id="resume", name="Before")
    # Stripe creates the customer, but every answer is lost: the sync fails after Stripe acted
    own_stripe.inject_fault("POST", "/v1/customers", "timeout", count=3, delay=0.1)
    first = queued_messages(tenant)
    assert run_worker(first)["batchItemFailures"]
    assert len(own_stripe.objects(key, "customer")) == 1
    call("PUT", f"/api/v1/customers/{customer['id']}", tenant=tenant, body={"name": "After"})
    own_stripe.advance_clock(25 * 3600)  # Stripe has forgotten the create's idempotency key
    assert run_worker(first + queued_messages(tenant)) == {"batchItemFailures": []}
    [theirs] = own_stripe.objects(key, "customer")
    assert theirs["name"] == "After" and theirs["metadata"]["flexprice_customer_id"] == customer["id"]
    assert mappings.find(Scope(*tenant), "customer", customer["id"], "stripe")["provider_entity_id"] == theirs["id"]
    refused = [r for r in own_stripe.request_log() if r["status"] >= 400 and r["path"].startswith("/v1/customers")]
    assert refused == []  # never an idempotency_error, never a refusal
