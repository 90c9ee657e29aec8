"""Back-fill of meters created after their events, through the SQS consumer, racing with ingestion."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator

import pytest

from billing import wiring
from billing.scope import Scope
from billing.services import backfill
from billing.services import events as event_service
from billing.settings import reset_settings
from devstack import template as tpl
from devstack.events import LambdaContext, sqs_event
from devstack.loader import load_handler
from tests.support.api import call
from tests.support.aws import aws_client
from tests.support.metering import bulk, create_meter, ingest, usage

MONTH = ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:BackfillQueue"


@pytest.fixture
def queue(aws_endpoint: str) -> Iterator[str]:
    """A back-fill queue in the embedded AWS, configured as the template configures it."""
    sqs = aws_client("sqs", aws_endpoint)
    url = sqs.create_queue(QueueName=f"backfill-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    previous = os.environ.get("BACKFILL_QUEUE_URL")
    os.environ["BACKFILL_QUEUE_URL"] = url
    reset_settings()
    try:
        yield url
    finally:
        if previous is None:
            os.environ.pop("BACKFILL_QUEUE_URL", None)
        else:
            os.environ["BACKFILL_QUEUE_URL"] = previous
        reset_settings()


def consumer():
    fn = tpl.functions(tpl.load())["MetersBackfillFunction"]
    return load_handler(fn.module_path, fn.attribute)


def deliver(bodies: list[dict]) -> dict:
    messages = [
        {"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": json.dumps(body), "Attributes": {}}
        for i, body in enumerate(bodies)
    ]
    return consumer()(sqs_event(QUEUE_ARN, messages), LambdaContext("MetersBackfillFunction", timeout_ms=120_000))


def drain(url: str) -> list[dict]:
    sqs = wiring.client("sqs")
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        if not got.get("Messages"):
            return out
        for msg in got["Messages"]:
            out.append(json.loads(msg["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=msg["ReceiptHandle"])


def event(i: int, customer: str = "c1", **props) -> dict:
    return {
        "event_id": f"b-{i}",
        "event_name": "render",
        "external_customer_id": customer,
        "timestamp": f"2026-10-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
        "properties": {"seconds": str(i), "kind": "gpu" if i % 2 else "cpu", **props},
    }


def value(tenant, meter, customer="c1"):
    res = usage(tenant, meter["id"], customer, *MONTH)
    assert res.status == 200, res.text
    return res.body["value"]


def test_a_meter_created_late_is_back_filled_once_however_often_it_runs(tenant, queue):
    assert bulk(tenant, [event(i, customer=f"c{i % 2}") for i in range(40)]).status == 202
    meter = create_meter(tenant, "render", "SUM", "seconds", filters={"kind": ["gpu"]})
    unique = create_meter(tenant, "render", "COUNT_UNIQUE", "seconds")
    assert value(tenant, meter, "c1") == 0
    assert backfill.request(Scope(*tenant), meter["id"]) is True
    attributes = wiring.client("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "1"
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
    message = backfill.message(Scope(*tenant), meter["id"])
    for _ in range(3):
        result = deliver([message, backfill.message(Scope(*tenant), unique["id"])])
        assert result == {"batchItemFailures": []}
    assert value(tenant, meter, "c1") == sum(i for i in range(40) if i % 2)
    assert value(tenant, meter, "c0") == 0
    assert value(tenant, unique, "c0") == 20
    looked = call("GET", "/api/v1/events/lookup", tenant=tenant, query={"id": "b-1"}).body
    assert sorted(looked["counted_for_meters"]) == sorted([meter["id"], unique["id"]])


def test_events_ingested_while_the_meter_appears_are_counted_exactly_once(tenant, queue, monkeypatch):
    monkeypatch.setenv("METER_CACHE_SECONDS", "3600")
    reset_settings()
    event_service.forget_meters()
    assert ingest(tenant, event(0)).status == 202  # warms the ingestion cache: no meters yet
    meter = create_meter(tenant, "render", "COUNT", forget_cache=False)
    sent = list(range(1, 121))
    errors: list[str] = []

    def writer(ids: list[int], refresh_at: int | None) -> None:
        for n, i in enumerate(ids):
            if refresh_at is not None and n == refresh_at:
                event_service.forget_meters()  # another execution environment, or the cache expiring
            res = ingest(tenant, event(i))
            if res.status != 202:
                errors.append(res.text)

    filled: list[int] = []

    def filler() -> None:
        for _ in range(4):
            filled.append(backfill.run(backfill.message(Scope(*tenant), meter["id"])))

    threads = [
        threading.Thread(target=writer, args=(sent[:60], None)),
        threading.Thread(target=writer, args=(sent[60:], 30)),
        threading.Thread(target=filler),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # the delayed run, after every ingestion cache has expired; then one more, which finds nothing
    filled.append(backfill.run(backfill.message(Scope(*tenant), meter["id"])))
    filled.append(backfill.run(backfill.message(Scope(*tenant), meter["id"])))
    assert value(tenant, meter) == 121
    assert filled[-1] == 0  # nothing left: every event was counted once, by ingestion or by back-fill
    assert 0 < sum(filled) < 121  # both paths took part


def test_a_long_back_fill_continues_in_a_new_message(tenant, queue, monkeypatch):
    assert bulk(tenant, [event(i) for i in range(30)]).status == 202
    meter = create_meter(tenant, "render", "SUM", "seconds")
    monkeypatch.setattr(backfill, "PAGE", 7)
    monkeypatch.setattr(backfill, "MAX_EVENTS_PER_MESSAGE", 10)
    pending = [backfill.message(Scope(*tenant), meter["id"])]
    runs = 0
    while pending:
        assert deliver(pending) == {"batchItemFailures": []}
        pending = drain(queue)
        runs += 1
    assert runs >= 3
    assert value(tenant, meter) == sum(range(30))


def test_stored_events_unusable_for_a_new_meter_are_reported_not_dropped(tenant, queue):
    good = [event(i) for i in range(5)]
    bad = [{**event(10 + i), "properties": {"kind": "gpu", "seconds": "n/a"}} for i in range(3)]
    assert bulk(tenant, good + bad).status == 202
    meter = create_meter(tenant, "render", "SUM", "seconds")
    assert deliver([backfill.message(Scope(*tenant), meter["id"])]) == {"batchItemFailures": []}
    res = usage(tenant, meter["id"], "c1", *MONTH)
    assert res.body["value"] == sum(range(5)) and res.body["invalid_events"] == 3
    # new events are checked at the edge instead
    rejected = ingest(tenant, {**event(20), "properties": {"seconds": "n/a"}})
    assert rejected.status == 400 and rejected.body["details"]["errors"][0]["field"] == "properties.seconds"


def test_a_failing_message_is_reported_alone(tenant, queue):
    meter = create_meter(tenant, "render", "COUNT")
    result = deliver([{"tenant_id": tenant[0]}, backfill.message(Scope(*tenant), meter["id"])])
    assert result == {"batchItemFailures": [{"itemIdentifier": "m0"}]}
