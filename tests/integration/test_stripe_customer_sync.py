"""Customer sync to Stripe through the sync queue, against the Stripe emulator over HTTP (official SDK)."""

from __future__ import annotations

import json
import uuid

import pytest

from billing import wiring
from billing.settings import get_settings
from devstack import template as tpl
from devstack.events import LambdaContext, sqs_event
from devstack.loader import load_handler
from tests.support.api import call

WORKER = tpl.functions(tpl.load())["StripeSyncWorkerFunction"]


@pytest.fixture
def stripe_key(stripe_emulator) -> str:
    """A fresh Stripe account on the emulator (each secret key is its own account)."""
    return f"sk_test_{uuid.uuid4().hex}"


def connect(tenant, key: str, customer_outbound: bool = True) -> dict:
    res = call(
        "POST",
        "/api/v1/connections",
        tenant=tenant,
        body={
            "name": "Stripe",
            "provider_type": "stripe",
            "encrypted_secret_data": {"secret_key": key, "webhook_secret": "whsec_test_0123456789"},
            "sync_config": {"customer": {"outbound": customer_outbound}, "invoice": {"outbound": True}},
        },
    )
    assert res.status == 201, res.text
    return res.body


def queued_messages(tenant) -> list[dict]:
    """Receive this tenant's messages from the real sync queue; others' are left for their tests.

    Other tests' messages are held invisible while the queue is searched (however many there are), then released.
    """
    sqs = wiring.client("sqs")
    url = get_settings().stripe_sync_queue_url
    mine, others = [], []
    while True:
        out = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=30)
        got = out.get("Messages", [])
        if not got:
            break
        for msg in got:
            (mine if json.loads(msg["Body"]).get("tenant_id") == tenant[0] else others).append(msg)
    for msg in others:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"], VisibilityTimeout=0)
    return mine


def run_worker(messages: list[dict]) -> dict:
    event = sqs_event("arn:aws:sqs:us-east-1:123456789012:StripeSyncQueue", messages)
    return load_handler(WORKER.module_path, WORKER.attribute)(event, LambdaContext("StripeSyncWorkerFunction"))


def stripe_customers(emulator, key: str) -> list[dict]:
    return emulator.objects(key, "customer")


def create_customer(tenant, external_id: str = "acme", **extra) -> dict:
    res = call("POST", "/api/v1/customers", tenant=tenant, body={"external_id": external_id, "name": "Acme", **extra})
    assert res.status == 201, res.text
    return res.body


def test_customer_is_created_in_stripe_once(tenant, stripe_emulator, stripe_key):
    connect(tenant, stripe_key)
    customer = create_customer(tenant, email="billing@acme.test")
    messages = queued_messages(tenant)
    assert len(messages) == 1
    assert run_worker(messages) == {"batchItemFailures": []}
    created = stripe_customers(stripe_emulator, stripe_key)
    assert len(created) == 1
    assert created[0]["metadata"]["flexprice_customer_id"] == customer["id"]
    assert created[0]["email"] == "billing@acme.test"
    # the same message delivered again (at-least-once) creates nothing more
    assert run_worker(messages) == {"batchItemFailures": []}
    assert len(stripe_customers(stripe_emulator, stripe_key)) == 1
    mappings = call(
        "GET",
        "/api/v1/integrations/mappings",
        tenant=tenant,
        query={"entity_type": "customer", "entity_id": customer["id"]},
    )
    assert mappings.status == 200
    [mapping] = mappings.body["items"]
    assert mapping["provider_type"] == "stripe" and mapping["provider_entity_id"] == created[0]["id"]
    assert mapping["id"].startswith("eim_")


def test_timeout_after_stripe_created_the_customer_does_not_duplicate(tenant, stripe_emulator, stripe_key):
    connect(tenant, stripe_key)
    create_customer(tenant)
    stripe_emulator.inject_fault("POST", "/v1/customers", "timeout", count=1, delay=0.2)
    assert run_worker(queued_messages(tenant)) == {"batchItemFailures": []}
    assert len(stripe_customers(stripe_emulator, stripe_key)) == 1


def test_stripe_outage_fails_the_message_then_the_retry_completes(tenant, stripe_emulator, stripe_key):
    connect(tenant, stripe_key)
    customer = create_customer(tenant)
    messages = queued_messages(tenant)
    stripe_emulator.inject_fault("POST", "/v1/customers", "500", count=10)
    result = run_worker(messages)
    assert result == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
    stripe_emulator.clear_faults()
    assert run_worker(messages) == {"batchItemFailures": []}
    [created] = stripe_customers(stripe_emulator, stripe_key)
    assert created["metadata"]["flexprice_customer_id"] == customer["id"]


def test_existing_stripe_customer_with_our_id_is_reused(tenant, stripe_emulator, stripe_key):
    import stripe

    connect(tenant, stripe_key)
    customer = create_customer(tenant)
    client = stripe.StripeClient(stripe_key, base_addresses={"api": stripe_emulator.url})
    existing = client.v1.customers.create({"name": "Acme", "metadata": {"flexprice_customer_id": customer["id"]}})
    assert run_worker(queued_messages(tenant)) == {"batchItemFailures": []}
    assert [c["id"] for c in stripe_customers(stripe_emulator, stripe_key)] == [existing.id]
    res = call(
        "GET",
        "/api/v1/integrations/mappings",
        tenant=tenant,
        query={"entity_type": "customer", "entity_id": customer["id"]},
    )
    assert res.body["items"][0]["provider_entity_id"] == existing.id


def test_customer_linked_in_the_request_is_not_created_again(tenant, stripe_emulator, stripe_key):
    connect(tenant, stripe_key)
    customer = create_customer(
        tenant,
        integration_entity_mapping=[{"provider_type": "stripe", "provider_entity_id": "cus_LinkedAlready01"}],
    )
    assert queued_messages(tenant) == []
    res = call(
        "GET",
        "/api/v1/integrations/mappings",
        tenant=tenant,
        query={"entity_type": "customer", "entity_id": customer["id"]},
    )
    assert res.body["items"][0]["provider_entity_id"] == "cus_LinkedAlready01"
    assert stripe_customers(stripe_emulator, stripe_key) == []


def test_no_connection_or_customer_sync_off_queues_nothing(tenant, other_tenant, stripe_key):
    create_customer(tenant)
    assert queued_messages(tenant) == []
    connect(other_tenant, stripe_key, customer_outbound=False)
    create_customer(other_tenant)
    assert queued_messages(other_tenant) == []


def test_mappings_query_is_validated_and_scoped(tenant, other_tenant):
    assert call("GET", "/api/v1/integrations/mappings", tenant=tenant, query={"entity_type": "customer"}).status == 400
    bad = call("GET", "/api/v1/integrations/mappings", tenant=tenant, query={"entity_type": "x", "entity_id": "y"})
    assert bad.status == 400
    customer = create_customer(
        tenant, integration_entity_mapping=[{"provider_type": "stripe", "provider_entity_id": "cus_Scoped0001"}]
    )
    res = call(
        "GET",
        "/api/v1/integrations/mappings",
        tenant=other_tenant,
        query={"entity_type": "customer", "entity_id": customer["id"]},
    )
    assert res.status == 200 and res.body["items"] == []
