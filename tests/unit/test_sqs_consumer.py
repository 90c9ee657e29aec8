"""The SQS consumer leaves the rest of a batch for redelivery when the invocation is close to its timeout."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from billing import sqs
from devstack import template as tpl
from devstack.events import LambdaContext, sqs_event


@dataclass
class SteppedContext(LambdaContext):
    """A Lambda context whose clock advances only when a record's work says so."""

    remaining_ms: int = 60_000
    asked: list[int] = field(default_factory=list)

    def get_remaining_time_in_millis(self) -> int:
        self.asked.append(self.remaining_ms)
        return self.remaining_ms


def batch(n: int) -> dict[str, Any]:
    return sqs_event(
        "arn:aws:sqs:us-east-1:123456789012:q",
        [{"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": json.dumps({"n": i})} for i in range(n)],
    )


def failed(result: dict[str, Any]) -> list[str]:
    return [f["itemIdentifier"] for f in result["batchItemFailures"]]


@pytest.fixture
def margin(monkeypatch):
    monkeypatch.setattr(sqs, "SAFETY_MARGIN_MS", 1_000)
    return 1_000


def test_records_after_the_margin_are_reported_failed_without_being_started(margin):
    # Given a batch of five whose work takes 1 200 ms each of a 4 000 ms budget (margin: 1 000 ms)
    context = SteppedContext("worker", remaining_ms=4_000)
    done: list[int] = []

    def work(body: dict[str, Any]) -> None:
        done.append(body["n"])
        context.remaining_ms -= 1_200

    # When the consumer runs it
    result = sqs.consumer(work)(batch(5), context)

    # Then records 0..2 ran (4 000, 2 800, 1 600 ms left), and 3 and 4 (400 ms left) are left over, not started
    assert done == [0, 1, 2]
    assert failed(result) == ["m3", "m4"]
    assert context.asked == [4_000, 4_000, 2_800, 1_600, 400]  # at the start, then before records 0..3


def test_time_running_out_stays_out_for_the_rest_of_the_batch(margin):
    # A context whose clock jumps back up after a low reading still never starts a record after the first deferral.
    readings = iter([5_000, 5_000, 5_000, 500, 5_000])

    class Jumpy(SteppedContext):
        def get_remaining_time_in_millis(self) -> int:
            return next(readings)

    done: list[int] = []
    result = sqs.consumer(lambda body: done.append(body["n"]))(batch(4), Jumpy("worker"))
    assert done == [0, 1]
    assert failed(result) == ["m2", "m3"]


def test_a_short_invocation_keeps_a_third_of_its_time_as_margin(margin):
    # A function whose whole timeout is below the margin still works through most of its batch.
    context = SteppedContext("worker", remaining_ms=900)  # margin: min(1 000, 900 / 3) = 300 ms
    done: list[int] = []

    def work(body: dict[str, Any]) -> None:
        done.append(body["n"])
        context.remaining_ms -= 250

    result = sqs.consumer(work)(batch(5), context)
    assert done == [0, 1, 2]  # 900, 650, 400 ms left; then 150
    assert failed(result) == ["m3", "m4"]


def test_each_invocation_starts_afresh(margin):
    context = SteppedContext("worker", remaining_ms=3_000)
    done: list[int] = []

    def work(body: dict[str, Any]) -> None:
        done.append(body["n"])
        context.remaining_ms = 10

    handler = sqs.consumer(work)
    assert failed(handler(batch(2), context)) == ["m1"]
    context.remaining_ms = 60_000
    assert failed(handler(batch(2), context)) == ["m1"]
    assert done == [0, 0]


def test_work_failures_and_deferrals_are_reported_together(margin):
    context = SteppedContext("worker", remaining_ms=5_000)

    def work(body: dict[str, Any]) -> None:
        if body["n"] == 1:
            raise RuntimeError("boom")
        if body["n"] == 2:
            context.remaining_ms = 10

    assert failed(sqs.consumer(work)(batch(5), context)) == ["m1", "m3", "m4"]


def test_without_a_context_every_record_runs():
    done: list[int] = []

    class Bare:
        function_name = "worker"
        memory_limit_in_mb = 128
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:worker"
        aws_request_id = "req"

    result = sqs.consumer(lambda body: done.append(body["n"]))(batch(3), Bare())
    assert done == [0, 1, 2]
    assert failed(result) == []


def test_every_queue_consumer_has_time_for_work_beyond_the_margin():
    # A margin close to a consumer's timeout would defer nearly every record of its batches.
    template = tpl.load()
    default = (template.get("Globals") or {}).get("Function", {}).get("Timeout", 3)
    consumers = {
        fn.logical_id: int(fn.properties.get("Timeout", default))
        for fn in tpl.functions(template).values()
        if any(ev.get("Type") == "SQS" for ev in fn.events.values()) and "consumer(" in fn.module_path.read_text()
    }
    assert consumers, "no SQS consumer found in the template"
    short = {name: t for name, t in consumers.items() if t * 1000 < 2 * sqs.SAFETY_MARGIN_MS}
    assert not short, f"timeouts below twice the {sqs.SAFETY_MARGIN_MS} ms safety margin: {short}"
