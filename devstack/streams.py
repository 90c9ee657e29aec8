"""DynamoDB stream event source mappings: read the table's stream, invoke with a batch, retry what fails.

Lambda's semantics, kept here:

- records are read in order from the table's stream (``StartingPosition``; the embedded AWS keeps one shard);
- ``FilterCriteria`` patterns on ``eventName`` (the only field the template filters on) drop records before the
  function sees them;
- a batch whose invocation raises is retried, whole, up to ``MaximumRetryAttempts`` times (after
  ``retry_delay`` seconds locally), then sent to the ``OnFailure`` destination queue as a description of the
  batch, and the mapping moves on.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from devstack import template as tpl
from devstack.stack import Stack, logical_of

log = logging.getLogger("devstack")

IDLE_WAIT_SECONDS = 0.2


@dataclass
class StreamSource:
    name: str
    function: str
    table: str
    batch_size: int
    starting_position: str
    event_names: set[str] | None
    max_retries: int
    on_failure_url: str | None


def _event_names(props: Mapping[str, Any]) -> set[str] | None:
    names: set[str] = set()
    for flt in (props.get("FilterCriteria") or {}).get("Filters") or []:
        pattern = json.loads(str(flt.get("Pattern") or "{}"))
        if set(pattern) - {"eventName"}:
            raise ValueError(f"only eventName filters are modelled locally, not {sorted(pattern)}")
        names.update(pattern.get("eventName") or [])
    return names or None


def stream_sources(stack: Stack, functions: dict[str, tpl.Function]) -> list[StreamSource]:
    out = []
    for fn in functions.values():
        for event_name, event in fn.events.items():
            if event.get("Type") != "DynamoDB":
                continue
            raw = event.get("Properties") or {}
            table_logical = logical_of(raw.get("Stream"))
            if table_logical not in stack.tables:
                raise ValueError(f"{fn.logical_id}.{event_name}: stream {raw.get('Stream')!r} is not a template table")
            props = stack.resolver.resolve({k: v for k, v in raw.items() if k != "Stream"})
            failure = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
            queue = stack.queue_by_arn(str(failure)) if failure else None
            out.append(
                StreamSource(
                    name=f"{fn.logical_id}{event_name}",
                    function=fn.logical_id,
                    table=stack.tables[str(table_logical)],
                    batch_size=int(props.get("BatchSize", 100)),
                    starting_position=str(props.get("StartingPosition", "LATEST")),
                    event_names=_event_names(props),
                    max_retries=int(props.get("MaximumRetryAttempts", -1)),
                    on_failure_url=queue.url if queue else None,
                )
            )
    return out


class StreamReader:
    """The records of one table's stream, read forward from where the mapping starts."""

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
    """One mapping: a thread that reads the stream and invokes the function with each batch, in order."""

    def __init__(
        self,
        source: StreamSource,
        reader: StreamReader,
        invoke: Callable[[str, Any], Any],
        sqs: Any,
        stop: threading.Event,
        retry_delay: float,
    ) -> None:
        self.source = source
        self.reader = reader
        self.invoke = invoke
        self.sqs = sqs
        self.stop = stop
        self.retry_delay = retry_delay
        # When the latest read that found nothing started (monotonic): the stream was caught up at that moment.
        self.empty_at = 0.0
        self.thread = threading.Thread(target=self._run, name=f"stream-{source.name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def poll_once(self) -> int:
        """Read one batch and hand it to the function (with retries). Returns how many records were read."""
        records = self.reader.read(self.source.batch_size)
        wanted = [r for r in records if self.source.event_names is None or r["eventName"] in self.source.event_names]
        if wanted:
            self._invoke(wanted)
        return len(records)

    def _invoke(self, records: list[dict[str, Any]]) -> None:
        attempt = 0
        while True:
            try:
                result = self.invoke(self.source.function, {"Records": records})
                failed = (result or {}).get("batchItemFailures") if isinstance(result, dict) else None
                if not failed:
                    return
                # Lambda resumes at the reported record; locally the whole batch is retried (relaying is idempotent)
                raise RuntimeError(f"the function reported failed records {failed}")
            except Exception as exc:  # the function failed: Lambda retries the same batch
                attempt += 1
                if 0 <= self.source.max_retries < attempt or self.stop.is_set():
                    log.warning("stream batch of %s failed %d times: %s", self.source.function, attempt, exc)
                    if self.source.on_failure_url:
                        first, last = records[0]["dynamodb"], records[-1]["dynamodb"]
                        detail = {
                            "function": self.source.function,
                            "error": f"{type(exc).__name__}: {exc}",
                            "first_sequence_number": first.get("SequenceNumber"),
                            "last_sequence_number": last.get("SequenceNumber"),
                            "batch_size": len(records),
                        }
                        self.sqs.send_message(QueueUrl=self.source.on_failure_url, MessageBody=json.dumps(detail))
                    return
                time.sleep(self.retry_delay)

    def _run(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                read = self.poll_once()
            except Exception:
                log.exception("stream poller %s", self.source.name)
                read = -1
            if read == 0:
                self.empty_at = began
            if read <= 0:
                self.stop.wait(IDLE_WAIT_SECONDS)
