"""A Lambda timeout in the middle of an SQS batch, on the real invoice queue and the real invoicing worker.

Killed: the runtime ends the invocation mid-batch, so no response reaches SQS and every message of the batch comes
back after the visibility timeout, the ones already done included. The worker runs in a child process that is
SIGKILLed while it finalizes the k-th record (earlier records are done, the k-th has its draft written); nothing is
deleted; the redelivered batch is handed to the worker again. Every subscription must end with exactly one invoice
for its period, numbered without gaps.

Graceful: with too little time left, the consumer stops before a record and reports it and the rest as failures;
SQS redelivers only those, and the second invocation finishes them.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from billing import sqs as consumer_module
from billing import wiring
from billing.scope import Scope
from billing.store import invoices as keys
from devstack.events import LambdaContext, sqs_event
from devstack.loader import load_handler
from tests.support.invoicing import WORKER_APP, fixed, invoices, setup, subscribe

ROOT = Path(__file__).resolve().parents[2]
SUBSCRIPTIONS = 5
VISIBILITY = 2  # seconds: how long a received batch stays hidden

# Runs the real worker handler on the batch in argv[1]; hangs in the finalize of record number argv[2] (0-based),
# after that record's draft is written, and reports progress on stdout.
CHILD = """
import json, sys, time
from pathlib import Path
from billing.services import invoicing
from devstack.events import LambdaContext
from devstack.loader import load_handler

event = json.load(open(sys.argv[1]))
hang_at = int(sys.argv[2])
finalizing = []
real_finalize, real_handle = invoicing.finalize, invoicing.handle_message

def finalize(*args, **kwargs):
    finalizing.append(1)
    if len(finalizing) > hang_at:
        print("hanging", flush=True)
        time.sleep(3600)
    return real_finalize(*args, **kwargs)

def handle_message(body, now):
    out = real_handle(body, now)
    print("done", body["subscription_id"], flush=True)
    return out

invoicing.finalize, invoicing.handle_message = finalize, handle_message
handler = load_handler(Path(sys.argv[3]))
handler(event, LambdaContext("invoicing-worker", timeout_ms=60_000))
print("returned", flush=True)
"""


@dataclass
class Batch:
    url: str
    arn: str
    messages: list[dict[str, Any]]

    @property
    def event(self) -> dict[str, Any]:
        return sqs_event(self.arn, self.messages)


def due_subscriptions(tenant: tuple[str, str]) -> list[dict[str, Any]]:
    """Subscriptions whose first monthly period ended ten days ago: one invoice each is due."""
    ctx = setup(tenant, lambda mid: [fixed("20.00")])
    start = (datetime.now(UTC) - timedelta(days=40)).replace(microsecond=0)
    return [subscribe(tenant, ctx, start_date=start.isoformat()) for _ in range(SUBSCRIPTIONS)]


def send(url: str, tenant: tuple[str, str], subs: list[dict[str, Any]]) -> None:
    entries = [
        {
            "Id": str(i),
            "MessageBody": json.dumps(
                {
                    "tenant_id": tenant[0],
                    "environment_id": tenant[1],
                    "subscription_id": sub["id"],
                    "period_start": sub["current_period_start"],
                    "period_end": sub["current_period_end"],
                }
            ),
        }
        for i, sub in enumerate(subs)
    ]
    out = wiring.client("sqs").send_message_batch(QueueUrl=url, Entries=entries)
    assert len(out["Successful"]) == len(subs)


def receive(url: str, arn: str, tenant: tuple[str, str], expected: int, timeout: float = 15.0) -> Batch:
    """Receive ``expected`` messages of ``tenant`` (hidden for VISIBILITY seconds); other tenants' are dropped."""
    client = wiring.client("sqs")
    got: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while len(got) < expected and time.monotonic() < deadline:
        out = client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            VisibilityTimeout=VISIBILITY,
            MessageSystemAttributeNames=["All"],
        )
        for msg in out.get("Messages", []):
            body = json.loads(msg["Body"])
            if (body.get("tenant_id"), body.get("environment_id")) == tuple(tenant):
                got[msg["MessageId"]] = msg
            else:
                client.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])
    assert len(got) == expected, f"received {len(got)} of {expected} messages"
    return Batch(url, arn, list(got.values()))


def acknowledge(batch: Batch, result: dict[str, Any]) -> list[str]:
    """What the event source mapping does with a response: delete every message not reported as failed."""
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    client = wiring.client("sqs")
    for msg in batch.messages:
        if msg["MessageId"] not in failed:
            client.delete_message(QueueUrl=batch.url, ReceiptHandle=msg["ReceiptHandle"])
    return [m["MessageId"] for m in batch.messages if m["MessageId"] in failed]


def cycle_invoices(tenant: tuple[str, str]) -> list[dict[str, Any]]:
    return [i for i in invoices(tenant) if i["billing_reason"] == "SUBSCRIPTION_CYCLE"]


def assert_invoiced_exactly_once(tenant: tuple[str, str], subs: list[dict[str, Any]]) -> None:
    got = cycle_invoices(tenant)
    assert sorted(i["subscription_id"] for i in got) == sorted(s["id"] for s in subs)  # one each
    assert all(i["invoice_status"] == "FINALIZED" and i["total"] == "20.00" for i in got)
    numbers = sorted(i["invoice_number"] for i in got)
    assert numbers == [f"INV-{n:06d}" for n in range(1, len(subs) + 1)]  # no gap, no double
    for sub in subs:
        now = keys.subscriptions().get(Scope(*tenant), sub["id"])
        assert now["current_period_start"] == sub["current_period_end"]  # moved on by exactly one period


def nothing_left(url: str, arn: str, tenant: tuple[str, str]) -> bool:
    time.sleep(VISIBILITY + 0.5)
    out = wiring.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    return not [m for m in out.get("Messages", []) if json.loads(m["Body"]).get("tenant_id") == tenant[0]]


@pytest.fixture
def invoice_queue(aws_stack) -> tuple[str, str]:
    queue = aws_stack.queues["InvoiceQueue"]
    return queue.url, queue.arn


def _wait_for(proc: subprocess.Popen[str], word: str, timeout: float = 60.0) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.strip())
            if line.startswith(word):
                return lines
    stderr = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
    raise AssertionError(f"the worker never said {word!r}: {lines} {stderr[-2000:]}")


@pytest.mark.parametrize("killed_at", [0, 3])
def test_a_batch_killed_midway_is_redelivered_whole_and_applied_once(tenant, invoice_queue, tmp_path, killed_at):
    url, arn = invoice_queue
    subs = due_subscriptions(tenant)
    send(url, tenant, subs)
    batch = receive(url, arn, tenant, SUBSCRIPTIONS)
    (tmp_path / "event.json").write_text(json.dumps(batch.event))

    # When the worker is killed while finalizing record ``killed_at`` (its draft written, earlier records done)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "layers" / "billing"), str(ROOT)])}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "event.json"), str(killed_at), str(ROOT / WORKER_APP)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = _wait_for(proc, "hanging")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert len([line for line in lines if line.startswith("done")]) == killed_at
    # Half-way: the records before the kill are invoiced, the killed one has a draft only.
    before = cycle_invoices(tenant)
    assert sorted(i["invoice_status"] for i in before) == ["DRAFT"] + ["FINALIZED"] * killed_at

    # Then nothing was acknowledged: after the visibility timeout SQS delivers the whole batch again
    again = receive(url, arn, tenant, SUBSCRIPTIONS)
    assert {m["MessageId"] for m in again.messages} == {m["MessageId"] for m in batch.messages}
    assert all(int(m["Attributes"]["ApproximateReceiveCount"]) == 2 for m in again.messages)

    # And the next invocation completes it, applying every effect exactly once
    handler = load_handler((ROOT / WORKER_APP).resolve())
    result = handler(again.event, LambdaContext("invoicing-worker", timeout_ms=60_000))
    assert acknowledge(again, result) == []
    assert_invoiced_exactly_once(tenant, subs)
    assert nothing_left(url, arn, tenant)


@dataclass
class ScriptedContext(LambdaContext):
    """The runtime's context with scripted remaining times (one reading at the start, then one per record)."""

    readings: list[int] | None = None

    def get_remaining_time_in_millis(self) -> int:
        assert self.readings, "asked for the remaining time more often than expected"
        return self.readings.pop(0)


def test_a_batch_close_to_the_timeout_leaves_the_rest_for_redelivery(tenant, invoice_queue, monkeypatch):
    monkeypatch.setattr(consumer_module, "SAFETY_MARGIN_MS", 5_000)
    url, arn = invoice_queue
    subs = due_subscriptions(tenant)
    send(url, tenant, subs)
    batch = receive(url, arn, tenant, SUBSCRIPTIONS)
    handler = load_handler((ROOT / WORKER_APP).resolve())

    # Given an invocation that has 4.9 s left when it reaches the third record
    context = ScriptedContext("invoicing-worker", readings=[60_000, 60_000, 20_000, 4_900])
    result = handler(batch.event, context)

    # Then the first two records are done, the other three reported failed without being started
    deferred = acknowledge(batch, result)
    assert deferred == [m["MessageId"] for m in batch.messages[2:]]
    done = cycle_invoices(tenant)
    assert len(done) == 2 and all(i["invoice_status"] == "FINALIZED" for i in done)
    assert context.readings == []

    # And SQS delivers just those three again after the visibility timeout; a fresh invocation finishes them
    again = receive(url, arn, tenant, SUBSCRIPTIONS - 2)
    assert {m["MessageId"] for m in again.messages} == set(deferred)
    result = handler(again.event, LambdaContext("invoicing-worker", timeout_ms=60_000))
    assert acknowledge(again, result) == []
    assert_invoiced_exactly_once(tenant, subs)
    assert nothing_left(url, arn, tenant)
