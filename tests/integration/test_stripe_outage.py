"""A Stripe outage of several minutes: the sync queue retries, dead-letters what runs out of receives, and once Stripe
is back the sweeper and the messages still queued catch up with exactly one Stripe object per customer and invoice.

Real parts: the sync worker's and the sweeper's Lambda handlers from template.yaml, the template's StripeSyncQueue and
its dead-letter queue in moto (moto counts receives and moves a message to the DLQ itself, per the redrive policy), the
Stripe emulator over HTTP with its outage switched on, the official SDK with its own retries.

Time is virtual: the test plays the part of Lambda's event source mapping and of the scheduler on a clock that advances
60 seconds per tick. A message that fails is kept invisible until the tick its visibility timeout expires, then made
visible again; the SDK's retries keep their number but lose their back-off sleeps. Nothing sleeps.

The arithmetic, from the template (checked by the test): VisibilityTimeout V = 180 s, maxReceiveCount M = 5, the
sweeper runs every S = 300 s and queues every pending invoice finalized more than 120 s ago.

- A message that keeps failing is delivered at t, t+V, ..., t+(M-1)V, i.e. M = 5 times over (M-1)V = 12 minutes; the
  receive after that (t + M·V = 15 min) moves it to the DLQ. An outage longer than 12 minutes therefore dead-letters
  every message queued when it began; this one lasts 14 minutes (0 ≤ t < 840 s).
- Queued at t=0 (the "originals"): 3 customer syncs and 3 invoice syncs. Delivered at 0, 180, 360, 540, 720 s, all
  during the outage: 5 failures each, 30 in all; at 900 s SQS moves all 6 to the DLQ.
- The sweeper at 300 s queues the 3 pending invoices again (S1): delivered at 300, 480, 660 s (3 failures each, 9) and
  at 840 s, when Stripe is back: S1 syncs the 3 invoices, creating their customers on the way.
- The sweeper at 600 s queues them once more (S2): delivered at 600, 780 s (2 failures each, 6), then at 960 s they
  find the invoices synced and do nothing. The sweeper at 900 s finds nothing pending.
- So: 45 failed deliveries (StripeSyncFailed), 39 redeliveries (StripeSyncRetried: receives 2..5 of the originals,
  2..4 of S1, 2..3 of S2), 6 successes (StripeSyncSucceeded: 3 invoices + the 3 customers they created), and each
  failed delivery made 1 + MAX_NETWORK_RETRIES requests that the emulator refused.
- Redriving the 6 dead-lettered originals afterwards makes no Stripe request at all: every object is already mapped.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import stripe

from billing import stripe_gateway, wiring
from billing.domain.money import to_minor_units
from billing.observability import metrics
from billing.scope import Scope
from billing.services import invoice_sync
from billing.store import invoices as keys
from devstack import template as tpl
from devstack.events import LambdaContext, sqs_event
from devstack.loader import load_handler
from devstack.schedules import rate_seconds
from devstack.stack import Queue, Stack
from stripe_emulator.server import StripeEmulator
from tests.integration.test_stripe_customer_sync import connect, create_customer
from tests.support.invoicing import fixed, invoices, make_queue, run_scheduler, setup, subscribe, usd_usage, use

TEMPLATE = tpl.load()
FUNCTIONS = tpl.functions(TEMPLATE)
WORKER = FUNCTIONS["StripeSyncWorkerFunction"]
SWEEPER = FUNCTIONS["StripeSyncSweeperFunction"]
TICK = 60
OUTAGE_ENDS = 840
HORIZON = 1200
SWEEP_EVERY = rate_seconds(TEMPLATE["Parameters"]["StripeSyncSweepRate"]["Default"]) or 0
HIDDEN = 12 * 3600  # a failed message stays invisible (in real time) until the virtual clock says otherwise
CUSTOMERS = {"acme": 1234, "globex": 77, "initech": 5}  # external id → tokens used in the period


class EventSourceMapping:
    """Lambda's SQS poller for the sync worker on a virtual clock, for one tenant's messages.

    Other tenants' leftovers in the shared queue (earlier tests, the sweeper's global re-queue) are deleted unseen.
    """

    def __init__(self, queue: Queue, tenant: tuple[str, str]) -> None:
        self.queue, self.tenant = queue, tenant
        self.sqs = wiring.client("sqs")
        self.handler = load_handler(WORKER.module_path, WORKER.attribute)
        self.timeout_ms = int(WORKER.properties["Timeout"]) * 1000
        self.hidden: dict[str, tuple[int, str]] = {}  # message id → (visible again at, receipt handle)
        self.deliveries: list[dict[str, Any]] = []  # (t, message id, receive count, body, ok)

    def mine(self, message: dict[str, Any]) -> bool:
        body = json.loads(message["Body"])
        return (body.get("tenant_id"), body.get("environment_id")) == self.tenant

    def poll(self, now: int) -> int:
        """Make due messages visible, then deliver every visible one in batches. Returns the messages delivered."""
        for message_id, (due, handle) in list(self.hidden.items()):
            if due <= now:
                self.sqs.change_message_visibility(QueueUrl=self.queue.url, ReceiptHandle=handle, VisibilityTimeout=0)
                del self.hidden[message_id]
        delivered = 0
        while True:
            got = self.sqs.receive_message(
                QueueUrl=self.queue.url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                VisibilityTimeout=HIDDEN,
                MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                return delivered
            batch = []
            for message in got:
                if self.mine(message):
                    batch.append(message)
                else:
                    self.sqs.delete_message(QueueUrl=self.queue.url, ReceiptHandle=message["ReceiptHandle"])
            if batch:
                self.invoke(now, batch)
                delivered += len(batch)

    def invoke(self, now: int, batch: list[dict[str, Any]]) -> None:
        context = LambdaContext(WORKER.logical_id, timeout_ms=self.timeout_ms)
        result = self.handler(sqs_event(self.queue.arn, batch), context)
        failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
        for message in batch:
            ok = message["MessageId"] not in failed
            self.deliveries.append(
                {
                    "t": now,
                    "id": message["MessageId"],
                    "receive": int(message["Attributes"]["ApproximateReceiveCount"]),
                    "body": json.loads(message["Body"]),
                    "ok": ok,
                }
            )
            if ok:
                self.sqs.delete_message(QueueUrl=self.queue.url, ReceiptHandle=message["ReceiptHandle"])
            else:
                self.hidden[message["MessageId"]] = (now + self.queue.visibility_timeout, message["ReceiptHandle"])


def emf_totals(stdout: str) -> dict[str, float]:
    """Sum of every metric in the EMF documents Powertools printed (one JSON object per line)."""
    totals: Counter[str] = Counter()
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        document = json.loads(line)
        if "_aws" not in document:
            continue
        for directive in document["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == "Billing"
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                totals[metric["Name"]] += sum(value) if isinstance(value, list) else value
    return dict(totals)


def dead_lettered(dlq: Queue, tenant: tuple[str, str]) -> list[dict[str, Any]]:
    """This tenant's messages in the DLQ, received (invisible for a while); other tenants' are made visible again."""
    sqs = wiring.client("sqs")
    mine: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=dlq.url, MaxNumberOfMessages=10, WaitTimeSeconds=0, VisibilityTimeout=HIDDEN)
        messages = got.get("Messages", [])
        if not messages:
            break
        for message in messages:
            body = json.loads(message["Body"])
            ours = (body.get("tenant_id"), body.get("environment_id")) == tenant
            (mine if ours else others).append(message)
    for message in others:
        sqs.change_message_visibility(QueueUrl=dlq.url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    return mine


@pytest.fixture
def instant_sdk_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK still retries each call MAX_NETWORK_RETRIES times; only the back-off sleeps are dropped."""
    monkeypatch.setattr(stripe._http_client.HTTPClient, "_sleep_time_seconds", lambda self, num_retries: 0.0)


@pytest.fixture
def outage(stripe_emulator: StripeEmulator) -> Iterator[StripeEmulator]:
    yield stripe_emulator
    stripe_emulator.end_outage()


@pytest.fixture
def published_metrics(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[[], dict[str, float]]]:
    """Metrics as the functions publish them: Powertools prints EMF to stdout at the end of each invocation."""

    def read() -> dict[str, float]:
        return emf_totals(capsys.readouterr().out)

    metrics.clear_metrics()  # what earlier tests buffered while publishing was off
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    capsys.readouterr()
    yield read
    metrics.clear_metrics()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def billed_customers(tenant: tuple[str, str], queue_url: str) -> tuple[dict[str, dict], list[dict]]:
    """Three customers on one plan, each with usage; one scheduler run finalizes their invoices."""
    ctx = setup(tenant, lambda mid: [usd_usage(mid, amount="0.10"), fixed("20.00")], customer="acme")
    customers = {"acme": ctx["customer"]}
    for external_id in list(CUSTOMERS)[1:]:
        customers[external_id] = create_customer(tenant, external_id=external_id)
    for external_id, tokens in CUSTOMERS.items():
        subscribe(tenant, {**ctx, "customer": customers[external_id]}, start_date="2025-01-15T00:00:00Z")
        use(tenant, ctx, tokens, "2025-01-20T08:00:00Z", customer=external_id)
    assert run_scheduler(queue_url, at("2025-02-15T02:00:00Z"), tenant) == len(CUSTOMERS)
    finalized = [i for i in invoices(tenant) if i["invoice_status"] == "FINALIZED"]
    assert len(finalized) == len(CUSTOMERS)
    for invoice in finalized:  # what the invoicing worker does after finalizing
        assert invoice_sync.request_invoice_sync(Scope(*tenant), invoice["id"])
    return customers, finalized


def test_template_retry_settings_are_the_ones_the_arithmetic_uses(aws_stack: Stack) -> None:
    queue = aws_stack.queues["StripeSyncQueue"]
    assert queue.visibility_timeout == 180
    assert queue.max_receive_count == 5
    assert queue.dead_letter_arn == aws_stack.queues["StripeSyncDeadLetterQueue"].arn
    assert SWEEP_EVERY == 300
    assert SWEEPER.properties["Events"]["Sweep"]["Type"] == "ScheduleV2"
    assert int(WORKER.properties["Timeout"]) * 6 <= queue.visibility_timeout


def test_queued_syncs_catch_up_after_a_stripe_outage_without_duplicates(
    tenant, aws_endpoint: str, aws_stack: Stack, outage: StripeEmulator, instant_sdk_retries, published_metrics
) -> None:
    queue = aws_stack.queues["StripeSyncQueue"]
    key = f"sk_test_{uuid.uuid4().hex}"
    scope = Scope(*tenant)
    connect(tenant, key)
    customers, ours = billed_customers(tenant, make_queue(aws_endpoint))
    published_metrics()  # set-up done: count only what the sync and the sweeper publish from here

    mapping = EventSourceMapping(queue, tenant)
    sweeper = load_handler(SWEEPER.module_path, SWEEPER.attribute)
    swept = []
    outage.start_outage("503")
    for now in range(0, HORIZON + 1, TICK):
        if now == OUTAGE_ENDS:
            record = outage.end_outage()
        if now and now % SWEEP_EVERY == 0:
            swept.append((now, sweeper({}, LambdaContext(SWEEPER.logical_id, timeout_ms=60_000))["queued"]))
        mapping.poll(now)

    # The deliveries, as the docstring counts them.
    by_time = Counter((d["t"], d["ok"]) for d in mapping.deliveries)
    assert {t for t, _ in by_time} == {0, 180, 300, 360, 480, 540, 600, 660, 720, 780, 840, 960}
    assert by_time[(0, False)] == by_time[(720, False)] == 6  # the originals, 1st and 5th delivery
    assert by_time[(840, True)] == 3 and by_time[(960, True)] == 3  # S1 syncs, S2 finds it done
    failures = [d for d in mapping.deliveries if not d["ok"]]
    assert len(failures) == 45 and all(d["t"] < OUTAGE_ENDS for d in failures)
    assert all(d["ok"] for d in mapping.deliveries if d["t"] >= OUTAGE_ENDS)
    assert max(d["receive"] for d in mapping.deliveries) == queue.max_receive_count
    assert record["refused"] == 45 * (1 + stripe_gateway.MAX_NETWORK_RETRIES)
    assert all(queued >= 3 for t, queued in swept if t < OUTAGE_ENDS)  # plus other tests' leftovers, if any

    # The originals ran out of receives during the outage and were dead-lettered, nothing else.
    originals = {d["id"] for d in mapping.deliveries if d["t"] == 0}
    dlq = aws_stack.queues["StripeSyncDeadLetterQueue"]
    letters = dead_lettered(dlq, tenant)
    assert {m["MessageId"] for m in letters} == originals
    assert Counter(json.loads(m["Body"])["kind"] for m in letters) == {"customer.sync": 3, "invoice.sync": 3}
    assert mapping.poll(HORIZON + TICK) == 0 and not mapping.hidden

    # Exactly one Stripe customer and one Stripe invoice per ours, totals equal to the minor unit.
    stripe_customers = outage.objects(key, "customer")
    assert sorted(c["metadata"]["flexprice_customer_id"] for c in stripe_customers) == sorted(
        c["id"] for c in customers.values()
    )
    stripe_invoices = {i["metadata"]["flexprice_invoice_id"]: i for i in outage.objects(key, "invoice")}
    assert len(stripe_invoices) == len(outage.objects(key, "invoice")) == len(ours)
    for invoice in ours:
        theirs = stripe_invoices[invoice["id"]]
        assert theirs["status"] in ("open", "paid")
        assert theirs["total"] == to_minor_units(Decimal(invoice["total"]), invoice["currency"])
        assert Decimal(invoice["total"]) > Decimal("20.00")
    items = outage.objects(key, "invoiceitem")
    assert len(items) == sum(1 for i in ours for line in i["line_items"] if Decimal(line["amount"]) != 0)
    pending = {i["invoice_id"] for i in invoice_sync.pending(datetime(2100, 1, 1, tzinfo=UTC), limit=10_000)}
    for invoice in ours:
        assert invoice["id"] not in pending
        assert wiring.entities().get(keys.sync_pk(scope), invoice["id"])["status"] == "done"

    # What was published: failures, redeliveries, successes, and the sweeper's re-queues.
    published = published_metrics()
    assert published["StripeSyncFailed"] == 45
    assert published["StripeSyncRetried"] == 39
    assert published["StripeSyncSucceeded"] == 6
    assert published["StripeInvoiceSynced"] == 3 and published["StripeCustomerCreated"] == 3
    assert published["StripeSyncRequeued"] == sum(queued for _, queued in swept)

    # Redriving the DLQ afterwards is a no-op: not one request reaches Stripe, nothing new is created.
    sqs = wiring.client("sqs")
    requests_before = len(outage.request_log())
    for message in letters:
        sqs.send_message(QueueUrl=queue.url, MessageBody=message["Body"])
        sqs.delete_message(QueueUrl=dlq.url, ReceiptHandle=message["ReceiptHandle"])
    redriven = EventSourceMapping(queue, tenant)
    assert redriven.poll(0) == 6
    assert all(d["ok"] for d in redriven.deliveries)
    assert len(outage.request_log()) == requests_before
    assert len(outage.objects(key, "customer")) == len(CUSTOMERS)
    assert len(outage.objects(key, "invoice")) == len(CUSTOMERS)
    assert published_metrics().get("StripeSyncFailed", 0) == 0
