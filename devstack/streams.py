"""DynamoDB stream event source mappings: poll the stream, filter, batch, invoke, retry, bisect, give up.

Lambda's semantics, kept here:

- records are read from each shard in order, from ``StartingPosition`` (``TRIM_HORIZON``: the oldest kept);
- ``FilterCriteria`` patterns (exact values, nested keys) drop records before batching; dropped records are passed;
- a batch is up to ``BatchSize`` records of one shard, gathered within ``MaximumBatchingWindowInSeconds``;
- with ``TumblingWindowInSeconds`` the event carries the window fields, ``shardId`` among them;
- the function raising fails the batch: with ``BisectBatchOnFunctionError`` it is split in two and each half is
  tried again, otherwise it is retried; after ``MaximumRetryAttempts`` tries of a batch that cannot be split its
  description goes to the ``DestinationConfig.OnFailure`` queue and the shard moves on.

Locally a retry waits ``retry_delay`` seconds. ``drain`` delivers everything there is now and returns (the test
tiers call it after ingestion; the local stack runs a polling thread per mapping).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devstack import template as tpl
from devstack.stack import Queue, Stack, logical_of

log = logging.getLogger("devstack")

POLL_INTERVAL = 0.2
SHARDS_TTL = 10.0
READ_LIMIT = 1000


@dataclass
class StreamSource:
    """A DynamoDB stream event source mapping."""

    name: str
    function: str
    stream_arn: str
    batch_size: int = 100
    batching_window: float = 0.0
    bisect: bool = False
    max_retries: int = -1
    tumbling_window: int = 0
    patterns: list[dict[str, Any]] = field(default_factory=list)
    on_failure: Queue | None = None
    enabled: bool = True


def source_of(fn_id: str, event_name: str, props: dict[str, Any], stream_arn: str) -> StreamSource:
    """A mapping from a function's ``Type: DynamoDB`` event properties (the stream ARN given resolved)."""
    filters = ((props.get("FilterCriteria") or {}).get("Filters")) or []
    return StreamSource(
        name=f"{fn_id}{event_name}",
        function=fn_id,
        stream_arn=stream_arn,
        batch_size=int(props.get("BatchSize", 100)),
        batching_window=float(props.get("MaximumBatchingWindowInSeconds", 0)),
        bisect=str(props.get("BisectBatchOnFunctionError", False)).lower() == "true",
        max_retries=int(props.get("MaximumRetryAttempts", -1)),
        tumbling_window=int(props.get("TumblingWindowInSeconds", 0)),
        patterns=[json.loads(f["Pattern"]) for f in filters],
        enabled=str(props.get("Enabled", True)).lower() == "true",
    )


def stream_sources(stack: Stack, functions: dict[str, tpl.Function]) -> list[StreamSource]:
    out = []
    for fn in functions.values():
        for event_name, event in fn.events.items():
            if event.get("Type") != "DynamoDB":
                continue
            raw = event.get("Properties") or {}
            props = stack.resolver.resolve(raw)
            source = source_of(fn.logical_id, event_name, props, str(props["Stream"]))
            destination = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
            if destination:
                queue_logical = logical_of(
                    ((raw.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
                )
                source.on_failure = stack.queues.get(queue_logical or "") or stack.queue_by_arn(str(destination))
            out.append(source)
    return out


def matches(pattern: dict[str, Any], record: dict[str, Any]) -> bool:
    """An event filter pattern of exact values (lists of allowed values, nested objects) against a record."""
    for key, expected in pattern.items():
        value = record.get(key) if isinstance(record, dict) else None
        if isinstance(expected, dict):
            if not isinstance(value, dict) or not matches(expected, value):
                return False
        elif isinstance(expected, list):
            if value not in expected:
                return False
        elif value != expected:
            return False
    return True


def _lambda_record(raw: dict[str, Any], arn: str) -> dict[str, Any]:
    """A stream record as Lambda delivers it: creation time in epoch seconds, the stream's ARN on each record."""
    change = dict(raw["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    return {**raw, "dynamodb": change, "eventSourceARN": arn}


class StreamReader:
    """The records of one table's stream, read forward from where a reader starts (tests that pump a stream
    themselves)."""

    def __init__(self, ddb: Any, streams: Any, table: str, starting_position: str) -> None:
        self.streams = streams
        self.arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
        shard = streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"][0]["ShardId"]
        position = "TRIM_HORIZON" if starting_position == "TRIM_HORIZON" else "LATEST"
        self.iterator = streams.get_shard_iterator(StreamArn=self.arn, ShardId=shard, ShardIteratorType=position)[
            "ShardIterator"
        ]

    def read(self, limit: int) -> list[dict[str, Any]]:
        out = self.streams.get_records(ShardIterator=self.iterator, Limit=limit)
        self.iterator = out.get("NextShardIterator") or self.iterator
        return [{**r, "eventSourceARN": self.arn} for r in out.get("Records", [])]


class StreamPoller:
    """One stream event source mapping: where it is in each shard, and delivery of batches."""

    def __init__(
        self,
        source: StreamSource,
        streams: Any,
        invoke: Callable[[str, Any], Any],
        stop: threading.Event | None = None,
        sqs: Any = None,
        retry_delay: float = 0.2,
    ) -> None:
        self.source = source
        self.streams = streams
        self.invoke = invoke
        self.stop = stop or threading.Event()
        self.sqs = sqs
        self.retry_delay = retry_delay
        self.positions: dict[str, str] = {}  # shard → the last sequence number passed
        self.busy = False
        self._described: tuple[float, list[str]] | None = None
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name=f"stream-{source.name}", daemon=True)

    # -- reading -------------------------------------------------------------------------------------------------
    def _shards(self) -> list[str]:
        """The stream's shards, described again every few seconds (shards split and close over time)."""
        now = time.monotonic()
        if self._described is None or now - self._described[0] > SHARDS_TTL:
            description = self.streams.describe_stream(StreamArn=self.source.stream_arn)["StreamDescription"]
            self._described = (now, [s["ShardId"] for s in description.get("Shards") or ()])
        return self._described[1]

    def _read(self, shard: str, after: str | None) -> list[dict[str, Any]]:
        position: dict[str, Any] = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
            if after
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        iterator = self.streams.get_shard_iterator(StreamArn=self.source.stream_arn, ShardId=shard, **position)
        page = self.streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=READ_LIMIT)
        return list(page.get("Records") or [])

    def _gather(self, shard: str, window: float) -> tuple[list[dict[str, Any]], str | None]:
        """Up to ``batch_size`` records passing the filter, waiting up to ``window`` after the first one; and the
        position after them (filtered records included)."""
        batch: list[dict[str, Any]] = []
        position = self.positions.get(shard)
        deadline = 0.0
        while True:
            records = self._read(shard, position)
            for raw in records:
                if len(batch) >= self.source.batch_size:
                    return batch, position
                position = raw["dynamodb"]["SequenceNumber"]
                record = _lambda_record(raw, self.source.stream_arn)
                if not self.source.patterns or any(matches(p, record) for p in self.source.patterns):
                    if not batch:
                        deadline = time.monotonic() + window
                    batch.append(record)
            if len(batch) >= self.source.batch_size or (not records and not batch):
                return batch, position
            if not records and time.monotonic() >= deadline:
                return batch, position
            if not records:
                self.stop.wait(min(POLL_INTERVAL, max(0.0, deadline - time.monotonic())))
                if self.stop.is_set():
                    return batch, position

    # -- delivery ------------------------------------------------------------------------------------------------
    def _event(self, shard: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        event: dict[str, Any] = {"Records": records}
        if self.source.tumbling_window:
            now = int(time.time())
            start = now - now % self.source.tumbling_window
            event.update(
                {
                    "window": {
                        "start": datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "end": datetime.fromtimestamp(start + self.source.tumbling_window, UTC).strftime(
                            "%Y-%m-%dT%H:%M:%SZ"
                        ),
                    },
                    "state": {},
                    "shardId": shard,
                    "eventSourceARN": self.source.stream_arn,
                    "isFinalInvokeForWindow": False,
                    "isWindowTerminatedEarly": False,
                }
            )
        return event

    def _deliver(self, shard: str, records: list[dict[str, Any]], tries_left: int) -> None:
        try:
            result = self.invoke(self.source.function, self._event(shard, records))
            failed = result.get("batchItemFailures") if isinstance(result, dict) else None
            if not failed:
                return
            # Lambda resumes at the first reported record; locally the whole batch is tried again (the functions
            # that report failures are idempotent)
            raise RuntimeError(f"the function reported failed records {failed}")
        except Exception:
            log.error(
                "%s raised on a batch of %d stream records:\n%s",
                self.source.function,
                len(records),
                traceback.format_exc(),
            )
        if self.stop.is_set():
            raise RuntimeError("stopped while a batch was failing")
        self.stop.wait(self.retry_delay)
        if self.source.bisect and len(records) > 1:
            half = len(records) // 2
            self._deliver(shard, records[:half], tries_left)
            self._deliver(shard, records[half:], tries_left)
        elif tries_left != 0:
            self._deliver(shard, records, tries_left - 1)
        else:
            self._give_up(shard, records)

    def _give_up(self, shard: str, records: list[dict[str, Any]]) -> None:
        info = {
            "requestContext": {"condition": "RetryAttemptsExhausted", "functionArn": self.source.function},
            "DDBStreamBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
                "batchSize": len(records),
                "streamArn": self.source.stream_arn,
            },
        }
        log.error("%s: a batch of %d stream records is given up", self.source.function, len(records))
        if self.sqs is not None and self.source.on_failure is not None:
            self.sqs.send_message(QueueUrl=self.source.on_failure.url, MessageBody=json.dumps(info))

    def poll(self, window: float | None = None) -> int:
        """Deliver at most one batch per shard; the number of records delivered."""
        wait = self.source.batching_window if window is None else window
        delivered = 0
        with self._lock:
            for shard in self._shards():
                batch, position = self._gather(shard, wait)
                if batch:
                    self.busy = True
                    try:
                        retries = self.source.max_retries if self.source.max_retries >= 0 else 10_000
                        self._deliver(shard, batch, retries)
                    finally:
                        self.busy = False
                    delivered += len(batch)
                if position is not None:
                    self.positions[shard] = position
        return delivered

    def drain(self) -> int:
        """Deliver everything the stream holds now, batch by batch, without waiting for windows."""
        total = 0
        while count := self.poll(window=0):
            total += count
        return total

    def pending(self) -> bool:
        """Whether a record passing the filter waits in some shard (or a batch is being delivered)."""
        if self.busy:
            return True
        with self._lock:
            for shard in self._shards():
                for raw in self._read(shard, self.positions.get(shard)):
                    record = _lambda_record(raw, self.source.stream_arn)
                    if not self.source.patterns or any(matches(p, record) for p in self.source.patterns):
                        return True
        return False

    # -- the local stack's thread --------------------------------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                if not self.poll():
                    self.stop.wait(POLL_INTERVAL)
            except Exception:
                if self.stop.is_set():
                    return
                log.error("stream poller %s failed:\n%s", self.source.name, traceback.format_exc())
                self.stop.wait(1)
