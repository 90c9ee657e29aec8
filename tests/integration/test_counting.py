"""Counting from the events table's stream: exactly once under redelivery, re-split batches and concurrent
delivery; the event index under a busy minute; the watermark that period-end invoicing waits on."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from billing import wiring
from billing.scope import Scope
from billing.services import counting
from billing.store import event_index
from tests.support import streams
from tests.support.metering import bulk, create_meter, ingest, number, usage

T0 = datetime(2026, 9, 14, 10, 0, tzinfo=UTC)


def _stamp(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _events(n: int, customer: str, *, spread_ms: int = 1000) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"e-{uuid.uuid4().hex[:8]}-{i}",
            "event_name": "job",
            "external_customer_id": customer,
            "timestamp": _stamp(T0 + timedelta(milliseconds=i * spread_ms)),
            "properties": {"units": str(i % 7 + 1)},
        }
        for i in range(n)
    ]


def _pending_records(tenant: tuple[str, str]) -> list[dict[str, Any]]:
    """The tenant's stream records the counting mapping would deliver now (without delivering them)."""
    poller = streams.poller()
    out: list[dict[str, Any]] = []
    for shard in poller._shards():
        after = poller.positions.get(shard)
        while True:
            records = poller._read(shard, after)
            if not records:
                break
            after = records[-1]["dynamodb"]["SequenceNumber"]
            out.extend(
                r for r in records if (found := counting.event_record(r)) is not None and found.scope == Scope(*tenant)
            )
    return out


def _batch(records: list[dict[str, Any]], shard: str) -> dict[str, Any]:
    return {"Records": records, "shardId": shard, "window": {}, "state": {}}


def _month(tenant: tuple[str, str], meter: dict[str, Any], customer: str) -> Any:
    res = usage(tenant, meter["id"], customer, "2026-09-01T00:00:00Z", "2026-10-01T00:00:00Z")
    assert res.status == 200, res.text
    return number(res.body["value"])


def test_a_batch_delivered_again_or_split_differently_is_counted_once(tenant):
    meter = create_meter(tenant, "job", "SUM", "units")
    sent = _events(40, "acme")
    want = sum(int(e["properties"]["units"]) for e in sent)
    with streams.manual():
        assert bulk(tenant, sent).status == 202
        records = _pending_records(tenant)
        assert len(records) == 40
        (shard,) = streams.poller()._shards()  # the embedded stream has one shard
        # the first half, then the whole batch again (a redelivery after a failure past the first half), then
        # its second half once more, then halves of halves: every event counted once
        counting.handle(_batch(records[:20], shard))
        # (stream order is the order the puts landed, not the order of the request)
        first = sum(int(r["dynamodb"]["NewImage"]["p"]["M"]["units"]["S"]) for r in records[:20])
        assert _month(tenant, meter, "acme") == first
        counting.handle(_batch(records, shard))
        counting.handle(_batch(records[20:], shard))
        counting.handle(_batch(records[10:30], shard))
        assert _month(tenant, meter, "acme") == want
    # the mapping then delivers the same records itself: already applied, by the shard's cursors
    assert streams.drain() >= 40
    assert _month(tenant, meter, "acme") == want


def test_concurrent_deliveries_of_one_batch_count_it_once(tenant):
    meter = create_meter(tenant, "job", "COUNT")
    with streams.manual():
        assert bulk(tenant, _events(30, "busy")).status == 202
        records = _pending_records(tenant)
        (shard,) = streams.poller()._shards()
        errors: list[BaseException] = []

        def deliver(part: list[dict[str, Any]]) -> None:
            try:
                counting.handle(_batch(part, shard))
            except BaseException as err:
                errors.append(err)

        # A shard's records are delivered in order: a batch, or its first part after a split, is what can arrive
        # twice at once (a retry overlapping a slow invocation); a later range never comes before an earlier one.
        threads = [threading.Thread(target=deliver, args=(records[:n],)) for n in (30, 30, 20, 30)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert _month(tenant, meter, "busy") == 30
    streams.drain()
    assert _month(tenant, meter, "busy") == 30


def test_the_index_of_a_busy_minute_spreads_over_keys_and_reads_back_whole(tenant):
    create_meter(tenant, "job", "COUNT")
    sent = _events(900, "hot", spread_ms=50)  # 45 s of one minute, one batch: about 18 KB of entries, 3 pages
    assert bulk(tenant, sent).status == 202
    scope = Scope(*tenant)
    table = wiring.events()
    keys = {
        shard
        for shard in range(event_index.SHARDS)
        if table.query(event_index.index_pk(scope, event_index.BY_CUSTOMER, "hot", shard))
    }
    assert 0 in keys and len(keys) > 1  # spilled pages went to other keys
    found = list(
        event_index.entries(table, scope, event_index.BY_CUSTOMER, "hot", _stamp(T0), _stamp(T0 + timedelta(hours=1)))
    )
    assert [event_id for _, event_id in found] == [e["event_id"] for e in sent]
    # a raw query by customer pages through the same index, in time order
    from tests.support.api import call

    res = call(
        "POST",
        "/api/v1/events/query",
        tenant=tenant,
        body={
            "external_customer_id": "hot",
            "start_time": _stamp(T0),
            "end_time": _stamp(T0 + timedelta(minutes=1)),
            "page_size": 1000,
            "order": "asc",
        },
    )
    assert res.status == 200, res.text
    assert [e["id"] for e in res.body["events"]] == [e["event_id"] for e in sent]


def test_the_watermark_waits_for_every_accepted_event(tenant):
    create_meter(tenant, "job", "COUNT")
    streams.drain()
    with streams.manual():
        assert ingest(tenant, _events(1, "late")[0]).status == 202
        after = datetime.now(UTC) + timedelta(seconds=2)
        # accepted before ``after`` and not counted yet: a period ending then cannot be closed
        assert counting.settled(after) is False
        # a period that ended before the event was accepted can
        assert counting.settled(datetime.now(UTC) - timedelta(hours=1)) is True
        streams.drain()
        assert counting.settled(after) is True
