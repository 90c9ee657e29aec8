"""Stripe webhooks: signed intake on the function URL, the queue, the processor, reconciliation and redrive.

Given a tenant environment with a Stripe connection (on the Stripe emulator), when Stripe-signed deliveries reach the
intake (built here with Stripe's scheme, or delivered by the emulator over HTTP through a loopback adapter), then only
valid ones are queued, and the processor applies each event once, whatever the duplication and the order.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
import stripe

from billing import wiring
from billing.scope import Scope
from billing.services import ledger, mappings, payment_methods, reconciliation, webhook_effects, webhooks
from billing.settings import reset_settings
from billing.store import invoices as invoice_keys
from devstack import template as tpl
from devstack.events import LambdaContext, function_url_event, sqs_event
from devstack.loader import load_handler
from tests.integration.test_stripe_customer_sync import create_customer
from tests.support.api import call
from tools import webhooks as tool

FUNCTIONS = tpl.functions(tpl.load())
INTAKE = FUNCTIONS["WebhooksStripeIntakeFunction"]
PROCESSOR = FUNCTIONS["WebhooksStripeProcessorFunction"]
RECONCILE = FUNCTIONS["WebhooksStripeReconcileFunction"]
SECRET = "whsec_" + "k3y" * 10


# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture
def stripe_key(stripe_emulator) -> str:
    return f"sk_test_{uuid.uuid4().hex}"


@pytest.fixture
def queues(aws_endpoint) -> Iterator[SimpleNamespace]:
    """A webhook queue and its DLQ (maxReceiveCount 5, as in the template) of this test, set as the intake's."""
    sqs = wiring.client("sqs")
    name = uuid.uuid4().hex[:10]
    dlq = sqs.create_queue(QueueName=f"webhook-dlq-{name}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"})
    url = sqs.create_queue(
        QueueName=f"webhook-{name}", Attributes={"VisibilityTimeout": "180", "RedrivePolicy": redrive}
    )["QueueUrl"]
    previous = os.environ.get("WEBHOOK_QUEUE_URL")
    os.environ["WEBHOOK_QUEUE_URL"] = url
    reset_settings()
    yield SimpleNamespace(url=url, dlq=dlq)
    if previous is None:
        os.environ.pop("WEBHOOK_QUEUE_URL", None)
    else:
        os.environ["WEBHOOK_QUEUE_URL"] = previous
    reset_settings()


@pytest.fixture
def webhook_switches(stripe_emulator) -> Iterator[Any]:
    yield stripe_emulator
    stripe_emulator.configure_webhooks(duplicate=False, shuffle=False, drop_next=0)


def connect(tenant, key: str, secret: str = SECRET, inbound: bool = False) -> dict:
    res = call(
        "POST",
        "/api/v1/connections",
        tenant=tenant,
        body={
            "name": "Stripe",
            "provider_type": "stripe",
            "encrypted_secret_data": {"secret_key": key, "webhook_secret": secret},
            "sync_config": {"customer": {"outbound": False, "inbound": inbound}, "invoice": {"outbound": True}},
        },
    )
    assert res.status == 201, res.text
    return res.body


def sign(body: bytes, secret: str = SECRET, at: int | None = None) -> str:
    t = int(time.time()) if at is None else at
    return f"t={t},v1=" + hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def stripe_event(event_type: str, obj: dict, *, event_id: str | None = None, created: int | None = None) -> dict:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2020-08-27",
        "created": created or int(time.time()),
        "type": event_type,
        "livemode": False,
        "data": {"object": obj},
    }


def post(tenant, body: bytes, signature: str | None, *, b64: bool = False, path: str | None = None) -> dict:
    headers = {"content-type": "application/json; charset=utf-8"}
    if signature is not None:
        headers["stripe-signature"] = signature
    event = function_url_event("POST", path or f"/webhooks/stripe/{tenant[0]}/{tenant[1]}", "", headers, None)
    if b64:
        event.update(body=base64.b64encode(body).decode(), isBase64Encoded=True)
    else:
        event.update(body=body.decode(), isBase64Encoded=False)
    return load_handler(INTAKE.module_path, INTAKE.attribute)(event, LambdaContext(INTAKE.logical_id))


def queued(url: str) -> list[dict]:
    sqs = wiring.client("sqs")
    out = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=0)
    return [json.loads(m["Body"]) for m in out.get("Messages", [])]


def pump(url: str) -> dict | None:
    """One batch through the processor, as the event source mapping does; failed messages are made visible again."""
    sqs = wiring.client("sqs")
    got = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=0,
        VisibilityTimeout=30,
        MessageSystemAttributeNames=["All"],
    ).get("Messages", [])
    if not got:
        return None
    result = load_handler(PROCESSOR.module_path, PROCESSOR.attribute)(
        sqs_event("arn:aws:sqs:us-east-1:123456789012:WebhookQueue", got), LambdaContext(PROCESSOR.logical_id)
    )
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    for message in got:
        if message["MessageId"] in failed:
            sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
        else:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return dict(result)


def drain(url: str, rounds: int = 50) -> int:
    batches = 0
    while batches < rounds and pump(url) is not None:
        batches += 1
    return batches


def our_invoice(tenant, total: str = "25.50", stripe_invoice: str | None = None) -> dict:
    """A finalized, unpaid invoice of ours (linked to ``stripe_invoice`` when given)."""
    scope = Scope(*tenant)
    invoice_id = f"inv_{uuid.uuid4().hex[:26].upper()}"
    record = {
        "id": invoice_id,
        "tenant_id": tenant[0],
        "environment_id": tenant[1],
        "customer_id": "cust_webhooks",
        "currency": "usd",
        "subtotal": Decimal(total),
        "total": Decimal(total),
        "amount_due": Decimal(total),
        "amount_paid": Decimal("0.00"),
        "amount_remaining": Decimal(total),
        "invoice_status": "FINALIZED",
        "payment_status": "PENDING",
        "invoice_number": "INV-000001",
        "period_start": "2026-01-01T00:00:00Z",
        "period_end": "2026-02-01T00:00:00Z",
        "created_at": "2026-02-01T01:00:00Z",
        "updated_at": "2026-02-01T01:00:00Z",
        "version": 1,
    }
    repo = invoice_keys.invoices()
    repo.create(scope, record, indexes=invoice_keys.invoice_indexes(scope, record))
    if stripe_invoice:
        mappings.link(scope, "invoice", invoice_id, "stripe", stripe_invoice)
    return record


def invoice_now(tenant, invoice_id: str) -> dict:
    return invoice_keys.invoices().get(Scope(*tenant), invoice_id)


def stripe_invoice_obj(stripe_id: str, status: str, **fields: Any) -> dict:
    return {
        "id": stripe_id,
        "object": "invoice",
        "status": status,
        "currency": "usd",
        "total": 2550,
        "amount_due": 2550,
        "amount_paid": 2550 if status == "paid" else 0,
        "payment_intent": "pi_" + stripe_id[3:],
        "status_transitions": {"paid_at": 1790000000 if status == "paid" else None},
        "metadata": {},
        **fields,
    }


def log_text(caplog: Any) -> str:
    """Every captured log record with all its fields (the structured extras included)."""
    return caplog.text + "\n".join(repr(vars(record)) for record in caplog.records)


class Loopback:
    """The function URL on loopback: an HTTP request becomes a function URL event for the intake handler."""

    def __init__(self) -> None:
        handler = load_handler(INTAKE.module_path, INTAKE.attribute)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                event = function_url_event("POST", self.path, "", dict(self.headers.items()), body)
                reply = handler(event, LambdaContext(INTAKE.logical_id))
                payload = reply["body"].encode()
                self.send_response(reply["statusCode"])
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Loopback:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def loopback() -> Iterator[Loopback]:
    with Loopback() as server:
        yield server


def endpoint_secret(stripe_emulator, key: str, loopback: Loopback, tenant) -> str:
    """Register the tenant environment's webhook URL with Stripe (the emulator); returns its signing secret."""
    client = stripe.StripeClient(key, base_addresses={"api": stripe_emulator.url})
    created = client.v1.webhook_endpoints.create(
        {"url": f"{loopback.url}/webhooks/stripe/{tenant[0]}/{tenant[1]}", "enabled_events": ["*"]}
    )
    return str(created.secret)


# ---------------------------------------------------------------------------------------------- intake


def test_a_valid_event_is_queued_and_answered_200(tenant, stripe_key, queues, monkeypatch):
    connect(tenant, stripe_key)
    event = stripe_event("invoice.paid", stripe_invoice_obj("in_valid", "paid"))
    body = json.dumps(event, indent=2).encode()
    reply = post(tenant, body, sign(body))
    assert reply["statusCode"] == 200, reply
    assert json.loads(reply["body"])["id"] == event["id"]
    # base64 bodies (function URL payload 2.0) are verified on the decoded bytes
    again = post(tenant, body, sign(body), b64=True)
    assert again["statusCode"] == 200
    [first, second] = queued(queues.url)
    assert first["tenant_id"] == tenant[0] and first["environment_id"] == tenant[1]
    assert first["stripe_event_id"] == event["id"] and first["type"] == "invoice.paid"
    assert first["payload"] == event and second["payload"] == event
    # warm: with the secret cached, verify + enqueue reads no storage (no connection or secret load per request)
    loads: list[object] = []
    real_load = webhooks._load_secret
    monkeypatch.setattr(webhooks, "_load_secret", lambda scope: loads.append(scope) or real_load(scope))
    for _ in range(20):
        assert post(tenant, body, sign(body))["statusCode"] == 200
    assert loads == []
    webhooks.forget_secrets()
    assert post(tenant, body, sign(body))["statusCode"] == 200
    assert len(loads) == 1


def _tampered(body: bytes) -> tuple[bytes, str]:
    return body.replace(b"2550", b"2551"), sign(body)


CASES = {
    "tampered": lambda body: _tampered(body),
    "wrong secret": lambda body: (body, sign(body, "whsec_someone_else")),
    "too old": lambda body: (body, sign(body, at=int(time.time()) - 301)),
    "too far in the future": lambda body: (body, sign(body, at=int(time.time()) + 360)),
    "missing header": lambda body: (body, None),
    "no v1": lambda body: (body, f"t={int(time.time())}"),
    "no timestamp": lambda body: (body, "v1=" + "0" * 64),
    "garbage header": lambda body: (body, "this is not a signature"),
    "two timestamps": lambda body: (body, f"t=1,{sign(body)}"),
    "v0 only": lambda body: (body, sign(body).replace("v1=", "v0=")),
    "not json": lambda body: (b"not json", sign(b"not json")),
    "not an event": lambda body: (b'{"id": "x"}', sign(b'{"id": "x"}')),
    "nested too deeply": lambda body: _signed(b'{"id": "evt_1", "a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    "integer of 5000 digits": lambda body: _signed(b'{"id": "evt_1", "amount": 1' + b"0" * 5000 + b"}"),
}


def _signed(body: bytes) -> tuple[bytes, str]:
    return body, sign(body)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_deliveries_are_400_and_queue_nothing(tenant, stripe_key, queues, case, caplog):
    connect(tenant, stripe_key)
    body = json.dumps(stripe_event("invoice.paid", stripe_invoice_obj("in_bad", "paid"))).encode()
    sent, signature = CASES[case](body)
    reply = post(tenant, sent, signature)
    assert reply["statusCode"] == 400, reply
    envelope = json.loads(reply["body"])
    assert envelope["code"] == "validation_error" and envelope["details"]["reason"]
    assert queued(queues.url) == []
    logged = log_text(caplog)
    assert "stripe webhook rejected" in logged and SECRET not in logged and stripe_key not in logged


def test_several_v1_signatures_are_accepted_when_one_matches(tenant, stripe_key, queues):
    connect(tenant, stripe_key)
    body = json.dumps(stripe_event("invoice.finalized", stripe_invoice_obj("in_rot", "open"))).encode()
    t = int(time.time())
    header = f"t={t},v1={'0' * 64},{sign(body, at=t).split(',')[1]}"
    assert post(tenant, body, header)["statusCode"] == 200
    assert len(queued(queues.url)) == 1


def test_unknown_tenant_oversized_and_wrong_paths(tenant, other_tenant, stripe_key, queues):
    connect(tenant, stripe_key)
    body = json.dumps(stripe_event("invoice.paid", stripe_invoice_obj("in_x", "paid"))).encode()
    assert post(other_tenant, body, sign(body))["statusCode"] == 400  # no connection there
    assert post(tenant, body, sign(body), path=f"/webhooks/stripe/{tenant[0]}/env%20x")["statusCode"] == 400
    big = json.dumps({**stripe_event("invoice.paid", {"id": "in_big"}), "pad": "x" * 300_000}).encode()
    assert post(tenant, big, sign(big))["statusCode"] == 413
    assert post(tenant, big, sign(big), b64=True)["statusCode"] == 413
    assert post(tenant, body, sign(body), path="/somewhere/else")["statusCode"] == 404
    assert queued(queues.url) == []


# ---------------------------------------------------------------------------------------------- processor


def process(tenant, event: dict) -> str:
    return webhooks.process(Scope(*tenant), event, source="webhook")


def test_duplicates_apply_once_and_every_webhook_is_recorded_with_an_expiry(tenant, stripe_key, queues):
    connect(tenant, stripe_key)
    ours = our_invoice(tenant, stripe_invoice="in_dup")
    event = stripe_event("invoice.paid", stripe_invoice_obj("in_dup", "paid"))
    body = json.dumps(event).encode()
    for _ in range(3):
        assert post(tenant, body, sign(body))["statusCode"] == 200
    assert drain(queues.url) == 1
    paid = invoice_now(tenant, ours["id"])
    assert paid["payment_status"] == "SUCCEEDED" and paid["amount_paid"] == Decimal("25.50")
    assert paid["amount_remaining"] == Decimal("0.00") and paid["paid_at"] == "2026-09-21T14:13:20Z"
    assert paid["version"] == 2  # written once
    [payment] = ledger.payments_of(Scope(*tenant), ours["id"])
    assert payment["amount"] == Decimal("25.50") and payment["gateway_payment_id"] == "pi_dup"
    record = webhooks.find_record(Scope(*tenant), event["id"])
    assert record["status"] == "processed" and record["outcome"] == "paid" and record["event_type"] == "invoice.paid"
    assert record["duplicates"] == 2 and record["received_at"] and record["processed_at"]
    assert int(record["expires_at"]) > time.time() + 80 * 86400


def test_unknown_event_types_are_recorded_no_ops(tenant):
    event = stripe_event("radar.early_fraud_warning.created", {"id": "issfr_1", "object": "radar.early_fraud_warning"})
    assert process(tenant, event) == "ignored_unknown_type"
    assert webhooks.find_record(Scope(*tenant), event["id"])["status"] == "processed"


def test_objects_that_are_not_ours_change_nothing(tenant):
    assert process(tenant, stripe_event("invoice.paid", stripe_invoice_obj("in_foreign", "paid"))) == "not_ours"
    pi = {"id": "pi_1", "object": "payment_intent", "invoice": "in_foreign", "metadata": {}}
    assert process(tenant, stripe_event("payment_intent.succeeded", pi)) == "handled_by_invoice_event"


INVOICE_EVENTS = ["invoice.finalized", "invoice.payment_failed", "invoice.paid", "invoice.payment_succeeded"]


def _events_for(stripe_id: str) -> dict[str, dict]:
    return {
        "invoice.finalized": stripe_event("invoice.finalized", stripe_invoice_obj(stripe_id, "open"), created=1),
        "invoice.payment_failed": stripe_event(
            "invoice.payment_failed", stripe_invoice_obj(stripe_id, "open", attempted=True), created=2
        ),
        "invoice.paid": stripe_event("invoice.paid", stripe_invoice_obj(stripe_id, "paid"), created=3),
        "invoice.payment_succeeded": stripe_event(
            "invoice.payment_succeeded", stripe_invoice_obj(stripe_id, "paid"), created=3
        ),
    }


def test_all_24_orderings_of_four_invoice_events_converge(tenant):
    finals = set()
    for order in itertools.permutations(INVOICE_EVENTS):
        stripe_id = f"in_{uuid.uuid4().hex[:12]}"
        ours = our_invoice(tenant, stripe_invoice=stripe_id)
        events = _events_for(stripe_id)
        for name in order:
            process(tenant, events[name])
        for name in order:  # and every event delivered again
            assert process(tenant, events[name]) == "duplicate"
        final = invoice_now(tenant, ours["id"])
        payments = ledger.payments_of(Scope(*tenant), ours["id"])
        finals.add(
            (
                final["invoice_status"],
                final["payment_status"],
                final["amount_paid"],
                final["amount_remaining"],
                final["paid_at"],
                len(payments),
            )
        )
    assert finals == {("FINALIZED", "SUCCEEDED", Decimal("25.50"), Decimal("0.00"), "2026-09-21T14:13:20Z", 1)}


def test_a_failure_is_visible_and_a_later_success_still_wins(tenant):
    ours = our_invoice(tenant, stripe_invoice="in_retry")
    events = _events_for("in_retry")
    assert process(tenant, events["invoice.payment_failed"]) == "failed"
    assert invoice_now(tenant, ours["id"])["payment_status"] == "FAILED"
    uncollectible = stripe_event("invoice.marked_uncollectible", stripe_invoice_obj("in_retry", "uncollectible"))
    assert process(tenant, uncollectible) == "already_failed"
    assert process(tenant, events["invoice.paid"]) == "paid"
    late = stripe_event("invoice.payment_failed", stripe_invoice_obj("in_retry", "open"))
    assert process(tenant, late) == "ignored_already_paid"
    assert invoice_now(tenant, ours["id"])["payment_status"] == "SUCCEEDED"


def test_voided_in_stripe_voids_ours(tenant):
    ours = our_invoice(tenant, stripe_invoice="in_void")
    assert process(tenant, stripe_event("invoice.voided", stripe_invoice_obj("in_void", "void"))) == "voided"
    assert invoice_now(tenant, ours["id"])["invoice_status"] == "VOIDED"
    assert process(tenant, stripe_event("invoice.voided", stripe_invoice_obj("in_void", "void"))) == "already_voided"


def test_an_event_for_an_invoice_we_do_not_know_yet_is_retried_then_dead_lettered(tenant, stripe_key, queues):
    connect(tenant, stripe_key)
    obj = stripe_invoice_obj("in_later", "paid", metadata={"flexprice_invoice_id": "inv_NOTHERE"})
    event = stripe_event("invoice.paid", obj)
    body = json.dumps(event).encode()
    assert post(tenant, body, sign(body))["statusCode"] == 200
    for attempt in range(1, 6):
        result = pump(queues.url)
        assert result is not None and len(result["batchItemFailures"]) == 1, attempt
        record = webhooks.find_record(Scope(*tenant), event["id"])
        assert record["status"] == "failed" and record["attempts"] == attempt
    assert pump(queues.url) is None  # the 6th receive moves it to the DLQ
    sqs = wiring.client("sqs")
    [dead] = sqs.receive_message(QueueUrl=queues.dlq, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    assert json.loads(dead["Body"])["stripe_event_id"] == event["id"]
    # the invoice arrives; the dead letters are moved back and applied
    ours = our_invoice(tenant, stripe_invoice="in_later")
    assert tool.redrive(sqs, queues.dlq, queues.url, dry_run=True) == 1
    assert tool.redrive(sqs, queues.dlq, queues.url, max_messages=5) == 1
    assert tool.redrive(sqs, queues.dlq, queues.url) == 0
    assert drain(queues.url) == 1
    assert invoice_now(tenant, ours["id"])["payment_status"] == "SUCCEEDED"
    assert webhooks.find_record(Scope(*tenant), event["id"])["status"] == "processed"


def test_redrive_moves_at_most_max_and_dry_run_moves_nothing(aws_endpoint, queues):
    sqs = wiring.client("sqs")
    for n in range(7):
        sqs.send_message(QueueUrl=queues.dlq, MessageBody=json.dumps({"n": n}))
    assert tool.redrive(sqs, queues.dlq, queues.url, dry_run=True) == 7
    assert tool.redrive(sqs, queues.dlq, queues.url, max_messages=3) == 3
    assert tool.redrive(sqs, queues.dlq, queues.url) == 4
    moved = []
    while got := sqs.receive_message(QueueUrl=queues.url, MaxNumberOfMessages=10).get("Messages", []):
        moved += [json.loads(m["Body"])["n"] for m in got]
        for m in got:
            sqs.delete_message(QueueUrl=queues.url, ReceiptHandle=m["ReceiptHandle"])
    assert sorted(moved) == list(range(7))


def test_inbound_customers_are_created_or_linked_without_echo(tenant, stripe_key, queues):
    connect(tenant, stripe_key, inbound=True)
    scope = Scope(*tenant)
    created = stripe_event(
        "customer.created", {"id": "cus_in1", "object": "customer", "email": "a@b.test", "name": "A"}
    )
    assert process(tenant, created) == "created"
    mapping = mappings.find_by_provider_id(scope, "stripe", "customer", "cus_in1")
    assert mapping is not None
    assert call("GET", f"/api/v1/customers/{mapping['entity_id']}", tenant=tenant).body["email"] == "a@b.test"
    assert process(tenant, stripe_event("customer.updated", created["data"]["object"])) == "unchanged"
    existing = create_customer(tenant, external_id="beta", email="beta@b.test")
    linked = stripe_event("customer.created", {"id": "cus_in2", "object": "customer", "email": "beta@b.test"})
    assert process(tenant, linked) == "linked"
    assert mappings.find(scope, "customer", existing["id"], "stripe")["provider_entity_id"] == "cus_in2"
    # nothing was queued for an outbound sync (no echo back to Stripe)
    sync_url = os.environ["STRIPE_SYNC_QUEUE_URL"]
    mine = [m for m in queued(sync_url) if m.get("tenant_id") == tenant[0]]
    assert mine == []


def test_inbound_customers_are_ignored_when_inbound_sync_is_off(tenant, stripe_key):
    connect(tenant, stripe_key, inbound=False)
    event = stripe_event("customer.created", {"id": "cus_off", "object": "customer", "email": "x@y.test"})
    assert process(tenant, event) == "inbound_off"
    assert mappings.find_by_provider_id(Scope(*tenant), "stripe", "customer", "cus_off") is None


def test_subscriptions_are_recorded_unless_their_metadata_names_ours(tenant):
    event = stripe_event("customer.subscription.created", {"id": "sub_1", "object": "subscription", "metadata": {}})
    assert process(tenant, event) == "recorded"


# ---------------------------------------------------------------------------------------------- through the emulator


def test_card_saved_on_the_hosted_page_becomes_the_default(
    tenant, stripe_emulator, stripe_key, queues, loopback, webhook_switches
):
    stripe_emulator.configure_webhooks(duplicate=True, shuffle=True, shuffle_window=0.3)
    connect(tenant, stripe_key, secret=endpoint_secret(stripe_emulator, stripe_key, loopback, tenant))
    customer = create_customer(tenant)
    scope = Scope(*tenant)
    from billing.schemas.payments import SetupIntentCreate

    session = payment_methods.setup_intent(
        scope,
        customer["id"],
        SetupIntentCreate(success_url="https://app.example.com/saved", set_default=True),
        request_id=uuid.uuid4().hex,
    )
    stripe_emulator.complete_checkout_session(session["checkout_session_id"], card="4242424242424242")
    # Deliveries are asynchronous, duplicated and shuffled: process until the queue stays empty.
    deadline = time.monotonic() + 15
    while True:
        assert stripe_emulator.wait_for_webhooks(timeout=10)
        drain(queues.url)
        [card] = payment_methods.saved_methods(scope, customer["id"])["providers"][0]["items"]
        if card["is_default"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert card["is_default"] is True and card["card"]["last4"] == "4242"
    outcomes = {}
    for delivery in stripe_emulator.webhook_deliveries():
        record = webhooks.find_record(scope, delivery["event_id"])
        if record:
            outcomes[delivery["event_type"]] = record["outcome"]
    assert outcomes["checkout.session.completed"] == "default_set"
    assert outcomes["setup_intent.succeeded"] == "default_set"


def _stripe_invoice_for(client: Any, ours: dict, card: str) -> Any:
    customer = client.v1.customers.create({"name": "Acme"})
    method = client.v1.payment_methods.attach(card, {"customer": customer.id})
    client.v1.customers.update(customer.id, {"invoice_settings": {"default_payment_method": method.id}})
    invoice = client.v1.invoices.create(
        {
            "customer": customer.id,
            "collection_method": "charge_automatically",
            "auto_advance": True,
            "metadata": {"flexprice_invoice_id": ours["id"]},
        }
    )
    client.v1.invoice_items.create(
        {"customer": customer.id, "invoice": invoice.id, "amount": 2550, "currency": "usd", "description": "Usage"}
    )
    return invoice


def test_duplicated_and_reordered_deliveries_converge_to_paid(
    tenant, stripe_emulator, stripe_key, queues, loopback, webhook_switches
):
    stripe_emulator.configure_webhooks(duplicate=True, shuffle=True, shuffle_window=0.3)
    connect(tenant, stripe_key, secret=endpoint_secret(stripe_emulator, stripe_key, loopback, tenant))
    client = stripe.StripeClient(stripe_key, base_addresses={"api": stripe_emulator.url})
    ours = our_invoice(tenant)
    invoice = _stripe_invoice_for(client, ours, "pm_card_visa")
    mappings.link(Scope(*tenant), "invoice", ours["id"], "stripe", invoice.id)
    client.v1.invoices.finalize_invoice(invoice.id)
    deadline = time.monotonic() + 10
    while client.v1.invoices.retrieve(invoice.id).status != "paid" and time.monotonic() < deadline:
        time.sleep(0.05)
    # Deliveries are asynchronous, duplicated and shuffled: process until the invoice settles.
    while True:
        assert stripe_emulator.wait_for_webhooks(timeout=10)
        drain(queues.url)
        final = invoice_now(tenant, ours["id"])
        if final["payment_status"] == "SUCCEEDED" or time.monotonic() > deadline + 15:
            break
        time.sleep(0.1)
    assert final["payment_status"] == "SUCCEEDED" and final["amount_paid"] == Decimal("25.50")
    assert len(ledger.payments_of(Scope(*tenant), ours["id"])) == 1
    rows = reconciliation.drift(Scope(*tenant))
    assert [(r["ours_status"], r["stripe_status"], r["drift"]) for r in rows] == [("SUCCEEDED", "SUCCEEDED", False)]
    assert "0 of 1 linked invoices differ" in tool.drift_table(rows)


def test_reconciliation_applies_an_event_the_emulator_dropped(
    tenant, stripe_emulator, stripe_key, queues, loopback, webhook_switches
):
    connect(tenant, stripe_key, secret=endpoint_secret(stripe_emulator, stripe_key, loopback, tenant))
    client = stripe.StripeClient(stripe_key, base_addresses={"api": stripe_emulator.url})
    ours = our_invoice(tenant)
    invoice = _stripe_invoice_for(client, ours, "pm_card_visa")
    mappings.link(Scope(*tenant), "invoice", ours["id"], "stripe", invoice.id)
    stripe_emulator.configure_webhooks(drop_next=100)  # nothing from here on reaches us
    client.v1.invoices.pay(invoice.id)
    assert stripe_emulator.wait_for_webhooks(timeout=10)
    stripe_emulator.configure_webhooks(drop_next=0)
    drain(queues.url)
    assert invoice_now(tenant, ours["id"])["payment_status"] == "PENDING"
    [row] = reconciliation.drift(Scope(*tenant))
    assert row["drift"] and row["stripe_status"] == "SUCCEEDED"
    context = LambdaContext(RECONCILE.logical_id, timeout_ms=int(RECONCILE.properties["Timeout"]) * 1000)
    result = load_handler(RECONCILE.module_path, RECONCILE.attribute)({}, context)
    assert result["applied"] >= 1
    final = invoice_now(tenant, ours["id"])
    assert final["payment_status"] == "SUCCEEDED" and final["amount_paid"] == Decimal("25.50")
    assert reconciliation.cursor(Scope(*tenant)) is not None
    # a second run finds nothing new to apply for this environment
    again = reconciliation.reconcile_environment(Scope(*tenant), _connection(tenant))
    assert again["applied"] == 0 and again["skipped"] == again["listed"]


def _connection(tenant) -> dict:
    from billing.services import connections

    found = connections.active(Scope(*tenant))
    assert found is not None
    return found


def test_no_secret_reaches_any_log_line(tenant, stripe_emulator, stripe_key, queues, loopback, caplog, capfd):
    secret = endpoint_secret(stripe_emulator, stripe_key, loopback, tenant)
    connect(tenant, stripe_key, secret=secret)
    ours = our_invoice(tenant, stripe_invoice="in_logs")
    good = json.dumps(stripe_event("invoice.paid", stripe_invoice_obj("in_logs", "paid"))).encode()
    post(tenant, good, sign(good, secret))
    post(tenant, good, sign(good, "whsec_wrong"))
    post(tenant, good.replace(b"2550", b"1"), sign(good, secret))
    unknown = json.dumps(
        stripe_event("invoice.paid", stripe_invoice_obj("in_x", "paid", metadata={"flexprice_invoice_id": "inv_NO"}))
    ).encode()
    post(tenant, unknown, sign(unknown, secret))
    drain(queues.url, rounds=3)
    assert invoice_now(tenant, ours["id"])["payment_status"] == "SUCCEEDED"
    out, err = capfd.readouterr()
    logged = out + err + log_text(caplog)
    assert "stripe webhook rejected" in logged and "stripe event not applied" in logged
    for needle in (secret, stripe_key, secret[6:]):
        assert needle not in logged


def test_concurrent_deliveries_of_one_event_apply_it_once(tenant, monkeypatch):
    """Two deliveries of the same event in flight at once: one applies it, the other comes back as a duplicate."""
    applied: list[str] = []
    entered = threading.Event()

    def slow_effect(scope, event):
        entered.set()
        time.sleep(0.5)
        applied.append(event["id"])
        return "applied_slowly"

    monkeypatch.setitem(webhook_effects.DISPATCH, "test.slow", slow_effect)
    scope, event = Scope(*tenant), {"id": f"evt_{uuid.uuid4().hex[:16]}", "type": "test.slow", "created": 1}
    outcomes: list[str] = []
    first = threading.Thread(target=lambda: outcomes.append(webhooks.process(scope, event, source="test")))
    first.start()
    assert entered.wait(10)
    with pytest.raises(webhooks.InProgress):
        webhooks.process(scope, event, source="test")  # the queue redelivers it later
    first.join(10)
    assert outcomes == ["applied_slowly"]
    assert webhooks.process(scope, event, source="test") == "duplicate"  # the redelivery
    assert applied == [event["id"]]
    record = webhooks.find_record(scope, event["id"])
    assert (record["status"], record["attempts"], record["duplicates"]) == ("processed", 1, 1)


def test_a_claim_whose_holder_died_is_taken_over_after_its_lease(tenant, monkeypatch):
    monkeypatch.setitem(webhook_effects.DISPATCH, "test.once", lambda scope, event: "applied")
    scope, event = Scope(*tenant), {"id": f"evt_{uuid.uuid4().hex[:16]}", "type": "test.once", "created": 1}
    pk = webhooks.record_pk(scope)
    # A delivery took the event and was killed before it finished: its lease is still running...
    wiring.entities().put({"PK": pk, "SK": event["id"], "status": "processing", "lease_until": int(time.time()) + 60})
    with pytest.raises(webhooks.InProgress):
        webhooks.process(scope, event, source="test")
    # ...then it runs out, and the next delivery applies the event.
    wiring.entities().update(pk, event["id"], "SET lease_until = :past", values={":past": int(time.time()) - 1})
    assert webhooks.process(scope, event, source="test") == "applied"
    assert webhooks.find_record(scope, event["id"])["status"] == "processed"
