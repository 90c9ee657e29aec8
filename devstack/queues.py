"""SQS event source mappings: long-poll, invoke with a batch, delete what succeeded.

Lambda's semantics, kept here:

- a batch is up to ``BatchSize`` messages (gathered within ``MaximumBatchingWindowInSeconds``);
- the function raising fails the whole batch; with ``ReportBatchItemFailures`` a returned
  ``batchItemFailures`` list fails only those messages, and an invalid list (an id that is not in the
  batch, an empty id) fails the whole batch;
- failed messages are not deleted: they become visible again and, once received more than the queue's
  ``maxReceiveCount`` times, SQS itself (moto, on the next receive) moves them to the dead-letter queue;
- ``ScalingConfig.MaximumConcurrency`` bounds how many batches of one mapping run at the same time
  (without it, two at a time locally).

Locally, a failed message becomes visible again after ``retry_delay`` seconds instead of the queue's full
visibility timeout, so retries and redrives happen in seconds.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from devstack.events import sqs_event
from devstack.stack import EventSource, Queue

log = logging.getLogger("devstack")

DEFAULT_CONCURRENCY = 2
POLL_WAIT_SECONDS = 1


def failed_ids(result: Any, batch_ids: list[str], report_failures: bool) -> set[str]:
    """Message ids to keep (retry), from the function's result, as Lambda reads it."""
    if not report_failures:
        return set()
    if result is None:
        return set()
    if not isinstance(result, dict):
        return set(batch_ids)
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return set(batch_ids)
    out = set()
    for item in failures:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not ident or ident not in batch_ids:
            # An invalid response fails the whole batch.
            return set(batch_ids)
        out.add(ident)
    return out


class Poller:
    """One event source mapping: a long-polling thread and up to ``MaximumConcurrency`` batches at a time."""

    def __init__(
        self,
        source: EventSource,
        sqs: Any,
        invoke: Callable[[str, Any], Any],
        stop: threading.Event,
        retry_delay: int,
    ) -> None:
        self.source = source
        self.sqs = sqs
        self.invoke = invoke
        self.stop = stop
        self.retry_delay = retry_delay
        self.concurrency = source.max_concurrency or DEFAULT_CONCURRENCY
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._workers: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"sqs-{source.name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        self.thread.join(timeout)
        with self._lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    def _receive(self) -> list[dict[str, Any]]:
        queue = self.source.queue
        wanted = self.source.batch_size
        messages: list[dict[str, Any]] = []
        deadline = 0.0
        while len(messages) < wanted and not self.stop.is_set():
            remaining = deadline - time.monotonic()
            got = self.sqs.receive_message(
                QueueUrl=queue.url,
                MaxNumberOfMessages=min(10, wanted - len(messages)),
                WaitTimeSeconds=POLL_WAIT_SECONDS if not messages or remaining >= 1 else 0,
                VisibilityTimeout=queue.visibility_timeout,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                if not got:
                    break
                # The batching window starts with the first message.
                deadline = time.monotonic() + self.source.batching_window
            messages.extend(got)
            if time.monotonic() >= deadline:
                break
        return messages

    def _run(self) -> None:
        while not self.stop.is_set():
            # Receive only when a batch can start: messages are not held invisible while waiting for a slot.
            if not self._slots.acquire(timeout=0.5):
                continue
            try:
                messages = self._receive()
            except Exception:
                self._slots.release()
                if self.stop.is_set():
                    return
                log.error("poller %s failed:\n%s", self.source.name, traceback.format_exc())
                self.stop.wait(1)
                continue
            if not messages:
                self._slots.release()
                continue
            worker = threading.Thread(
                target=self._work, args=(messages,), name=f"{self.thread.name}-batch", daemon=True
            )
            with self._lock:
                self._workers.add(worker)
            worker.start()

    def _work(self, messages: list[dict[str, Any]]) -> None:
        try:
            self._process(messages)
        except Exception:
            log.error("poller %s failed:\n%s", self.source.name, traceback.format_exc())
        finally:
            with self._lock:
                self._workers.discard(threading.current_thread())
            self._slots.release()

    def _process(self, messages: list[dict[str, Any]]) -> None:
        queue: Queue = self.source.queue
        batch_ids = [m["MessageId"] for m in messages]
        event = sqs_event(queue.arn, messages)
        try:
            result = self.invoke(self.source.function, event)
            failed = failed_ids(result, batch_ids, self.source.report_failures)
        except Exception:
            log.error(
                "%s raised on a batch of %d from %s:\n%s",
                self.source.function,
                len(messages),
                queue.name,
                traceback.format_exc(),
            )
            failed = set(batch_ids)
        done = [m for m in messages if m["MessageId"] not in failed]
        kept = [m for m in messages if m["MessageId"] in failed]
        for i in range(0, len(done), 10):
            chunk = done[i : i + 10]
            self.sqs.delete_message_batch(
                QueueUrl=queue.url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(chunk)],
            )
        for i in range(0, len(kept), 10):
            chunk = kept[i : i + 10]
            self.sqs.change_message_visibility_batch(
                QueueUrl=queue.url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self.retry_delay}
                    for n, m in enumerate(chunk)
                ],
            )
        if kept:
            log.info(
                "%s: %d of %d message(s) from %s will be retried",
                self.source.function,
                len(kept),
                len(messages),
                queue.name,
            )


def queue_depth(sqs: Any, queue: Queue) -> int:
    """Messages visible or in flight. Messages sent with ``DelaySeconds`` are not counted until they are due: a
    deliberately delayed re-run (e.g. the meter back-fill's second pass) must not hold a drain for minutes."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue.url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attrs.values())
