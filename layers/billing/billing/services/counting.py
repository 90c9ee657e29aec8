"""Counting: the usage counters and the event index, applied in batches from the events table's stream.

Ingestion writes only the event item (``billing.services.events``). The table's stream (new images) delivers each
new event item to the counting function in batches, one stream shard per invocation, in order. For a batch this
module:

1. writes the event index pages of the batch (``billing.store.event_index``), by customer and by event name;
2. per customer, adds the batch's summed contributions to the counters in one transaction (or a few, in stream
   order) together with the customer's cursor for the shard, so a redelivered or differently split batch is
   applied exactly once (``Counters.apply``);
3. moves the shard's watermark (``~stream#counted`` / shard id): the last record counted and its creation time.

``settled(end)`` answers whether every event accepted before ``end`` has been counted, from the watermarks and the
stream itself: period-end invoicing waits on it (docs/metering.md, docs/decisions.md D19).
"""

from __future__ import annotations

import contextlib
import time
import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billing import wiring
from billing.domain import metering as m
from billing.observability import logger, metrics
from billing.scope import Scope
from billing.settings import get_settings
from billing.store import attrs, catalog, event_index
from billing.store.counters import Counters, Entry
from billing.store.dynamo import ConditionFailed
from billing.timeutil import parse_iso

EVENT_SK = "e"
WATERMARK_PK = "~stream#counted"
SEQUENCE_WIDTH = 40  # DynamoDB Streams sequence numbers have 21 to 40 digits: padded, they compare as text
KEEP_SECONDS = 2 * 86_400  # cursors and watermarks outlive the stream's 24 h retention
WRITERS = 8
SETTLE_PAGES = 20


def padded(sequence: str) -> str:
    return sequence.zfill(SEQUENCE_WIDTH)


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value or 0)


@dataclass(frozen=True)
class Record:
    scope: Scope
    event_id: str
    item: dict[str, Any]
    sequence: str
    created: float


def event_record(raw: Mapping[str, Any]) -> Record | None:
    """The new event item of a stream record; None for anything else (counters, pages, updates)."""
    if raw.get("eventName") != "INSERT":
        return None
    change = raw.get("dynamodb") or {}
    keys = change.get("Keys") or {}
    if (keys.get("SK") or {}).get("S") != EVENT_SK or "NewImage" not in change:
        return None
    prefix, found, event_id = str((keys.get("PK") or {}).get("S", "")).partition("#evt#")
    tenant, _, environment = prefix.partition("#")
    if not found or not environment:
        return None
    item = {name: attrs.deserialize_value(value) for name, value in change["NewImage"].items()}
    return Record(
        Scope(tenant, environment),
        event_id,
        item,
        padded(str(change["SequenceNumber"])),
        _epoch(change.get("ApproximateCreationDateTime")),
    )


# -- meters (immutable: kept for the life of the process) ------------------------------------------------------
_meters: dict[tuple[str, str], m.Meter] = {}


def _meters_of(scope: Scope, ids: set[str]) -> dict[str, m.Meter]:
    missing = sorted(i for i in ids if (scope.prefix, i) not in _meters)
    if missing:
        for meter_id, record in catalog.meters().get_many(scope, missing).items():
            _meters[(scope.prefix, meter_id)] = m.Meter.from_record(record)
    return {i: _meters[(scope.prefix, i)] for i in ids if (scope.prefix, i) in _meters}


def entry_of(record: Record, meters: Mapping[str, m.Meter]) -> Entry:
    """What one event adds to the counters: every meter it was accepted for (``cf``), and its name count."""
    item = record.item
    at = parse_iso(str(item["t"]))
    properties = item.get("p") or {}
    entry = Entry(
        event_id=record.event_id,
        op=None,
        at=at,
        meters={},
        name=str(item["n"]),
        sequence=record.sequence,
    )
    at_ms = m.epoch_ms(at)
    for meter_id in sorted(item.get("cf") or ()):
        meter = meters.get(meter_id)
        if meter is None:
            logger.error("event counted for an unknown meter", extra={"meter_id": meter_id})
            continue
        entry.meters[meter_id] = meter
        try:
            value = m.metered_value(meter, properties)
        except m.FieldError:
            for bucket in m.buckets_of(at):
                entry.cells[(meter_id, bucket)] = m.Cell(invalid=1)
            continue
        for bucket in m.buckets_of(at):
            entry.cells[(meter_id, bucket)] = m.event_cell(meter, value, at_ms, record.event_id, bucket)
    return entry


def _index_pages(
    records: Sequence[Record], tag: str
) -> list[tuple[Scope, str, str, list[tuple[int, str, dict[str, Any]]]]]:
    keyed: dict[tuple[Scope, str, str], list[tuple[str, str]]] = {}
    for record in records:
        at = parse_iso(str(record.item["t"]))
        text = (event_index.minute_key(at), event_index.entry(at, record.event_id))
        keyed.setdefault((record.scope, event_index.BY_CUSTOMER, str(record.item["c"])), []).append(text)
        keyed.setdefault((record.scope, event_index.BY_NAME, str(record.item["n"])), []).append(text)
    first = records[0].sequence
    return [(scope, kind, key, event_index.pages(texts, first, tag)) for (scope, kind, key), texts in keyed.items()]


def apply(records: Sequence[Record], shard: str) -> int:
    """Index and count one batch of a stream shard, exactly once. Returns the number of events newly counted."""
    if not records:
        return 0
    table = wiring.events()
    expires_at = int(time.time()) + KEEP_SECONDS
    tag = f"{zlib.crc32(shard.encode()):08x}"
    pages = _index_pages(records, tag)
    groups: dict[tuple[Scope, str], list[Entry]] = {}
    for scope in {r.scope for r in records}:
        own = [r for r in records if r.scope == scope]
        meters = _meters_of(scope, {i for r in own for i in (r.item.get("cf") or ())})
        for record in own:
            groups.setdefault((scope, str(record.item["c"])), []).append(entry_of(record, meters))

    def write_pages(job: tuple[Scope, str, str, list[tuple[int, str, dict[str, Any]]]]) -> int:
        scope, kind, key, made = job
        return event_index.put_pages(table, scope, kind, key, made)

    def count(key: tuple[Scope, str]) -> int:
        scope, customer = key
        return Counters(table, scope).apply(customer, groups[key], shard, expires_at)

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        list(pool.map(write_pages, pages))
        counted = sum(pool.map(count, list(groups)))
    last = records[-1]
    # An older batch delivered again leaves the watermark where it is (already past it).
    with contextlib.suppress(ConditionFailed):
        table.put(
            {"PK": WATERMARK_PK, "SK": shard, "q": last.sequence, "at": int(last.created), "expires_at": expires_at},
            condition="attribute_not_exists(q) OR q <= :q",
            values={":q": last.sequence},
        )
    metrics.add_metric(name="EventsCounted", unit="Count", value=counted)
    metrics.add_metric(name="CountingLagSeconds", unit="Seconds", value=max(0.0, time.time() - records[0].created))
    return counted


def handle(event: Mapping[str, Any]) -> dict[str, Any]:
    """The counting function: a batch of the events table's stream (one shard; its id comes with the tumbling
    window fields of the event). Raises on failure: the event source retries, bisects, then sends the batch's
    description to the on-failure queue."""
    shard = event.get("shardId")
    if not shard:
        raise ValueError("the stream batch names no shard (the event source needs TumblingWindowInSeconds)")
    records = [r for raw in event.get("Records") or () if (r := event_record(raw)) is not None]
    counted = apply(records, str(shard))
    if records:
        logger.info("events counted", extra={"records": len(records), "counted": counted, "shard": shard})
    return {"state": {}}


# -- the watermark -------------------------------------------------------------------------------------------------
def _is_event_insert(raw: Mapping[str, Any]) -> bool:
    keys = (raw.get("dynamodb") or {}).get("Keys") or {}
    return (
        raw.get("eventName") == "INSERT"
        and (keys.get("SK") or {}).get("S") == EVENT_SK
        and "#evt#" in str((keys.get("PK") or {}).get("S", ""))
    )


def _shards(streams: Any, arn: str) -> list[str]:
    shards: list[str] = []
    start: str | None = None
    while True:
        kwargs: dict[str, Any] = {"StreamArn": arn}
        if start:
            kwargs["ExclusiveStartShardId"] = start
        description = streams.describe_stream(**kwargs)["StreamDescription"]
        shards.extend(s["ShardId"] for s in description.get("Shards") or ())
        start = description.get("LastEvaluatedShardId")
        if not start:
            return shards


def _shard_settled(streams: Any, arn: str, shard: str, end: float) -> bool:
    mark = wiring.events().get(WATERMARK_PK, shard)
    if mark is not None and int(mark["at"]) >= end:
        return True  # a record created at or after the end is counted, so is everything before it in the shard
    if mark is not None:
        position = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": str(mark["q"]).lstrip("0")}
    else:
        position = {"ShardIteratorType": "TRIM_HORIZON"}
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, **position).get("ShardIterator")
    for _ in range(SETTLE_PAGES):
        if not iterator:
            return True  # a closed shard read to its end
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        records = page.get("Records") or []
        if not records:
            return True  # read up to the newest record
        for raw in records:
            if _epoch((raw.get("dynamodb") or {}).get("ApproximateCreationDateTime")) >= end:
                return True
            if _is_event_insert(raw):
                return False  # an event written before the end and not counted yet
        iterator = page.get("NextShardIterator")
    return False


def settled(end: datetime) -> bool:
    """Whether every event accepted before ``end`` has been counted (and indexed).

    For each shard of the stream: its watermark's record was created at or after ``end``, or the records after the
    watermark hold no event created before ``end``. Creation times are whole seconds (rounded down), so a record
    stamped before ``end`` is taken as possibly before it: the answer errs towards waiting."""
    arn = get_settings().events_stream_arn
    if not arn:
        raise RuntimeError("EVENTS_STREAM_ARN is required to know whether usage is counted")
    streams = wiring.client("dynamodbstreams")
    limit = end.astimezone(UTC).timestamp()
    return all(_shard_settled(streams, arn, shard, limit) for shard in _shards(streams, arn))
