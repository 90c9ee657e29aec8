"""Ingestion benchmark: both ingestion paths, their write cost, one hot customer, and usage reads.

Runs the real functions against an embedded DynamoDB on loopback (the integration tier's harness), records every
write they send to the events table, and prints:

- the bulk path (20,000 events over 50 customers and 3 meters in 1,000-event bulks) and the single-event path
  (``POST /events`` one by one, 1,000 events): events/s, DynamoDB requests, write units per event by DynamoDB's
  published rules, index replication included (see ``Writes``);
- one customer at 1,000 single events/s and at 10,000 bulk events/s of event time: the write units each
  partition key (table and index keys) takes per second of event time, against 500 (half of DynamoDB's 1,000
  WCU/s per partition);
- the raw ``BatchWriteItem`` ceiling of the same embedded DynamoDB in the same run, and the ratio of ingested
  events/s to it;
- items read by a one-month usage query at 1k, 10k and 100k stored events of one customer.

Times are from this machine and the embedded DynamoDB (slower than DynamoDB); the counts are exact.
``BENCH_EVENTS``, ``BENCH_SINGLE``, ``BENCH_HOT_SINGLE``, ``BENCH_HOT_BULK``, ``BENCH_RAW_ITEMS`` and
``BENCH_READ_LEVELS`` (comma-separated) shrink the run.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "billing")]
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

EVENTS = int(os.environ.get("BENCH_EVENTS", "20000"))
CUSTOMERS = 50
BULK = 1000
SINGLE = int(os.environ.get("BENCH_SINGLE", "1000"))
HOT_SINGLE = int(os.environ.get("BENCH_HOT_SINGLE", "2000"))
HOT_BULK = int(os.environ.get("BENCH_HOT_BULK", "20000"))
RAW_ITEMS = int(os.environ.get("BENCH_RAW_ITEMS", "20000"))
READ_LEVELS = [int(x) for x in os.environ.get("BENCH_READ_LEVELS", "1000,10000,100000").split(",")]


# -- DynamoDB item size (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html)
def _number_size(raw: str) -> int:
    digits = raw.lstrip("-").replace(".", "").lstrip("0") or "0"
    return 1 + math.ceil(len(digits) / 2) + (1 if raw.startswith("-") else 0)


def _value_size(value: dict[str, Any]) -> int:
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(_number_size(s) for s in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + _value_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(_value_size(v) + 1 for v in inner)
    raise ValueError(kind)


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


class Writes:
    """Every write the functions send to the events table, priced by DynamoDB's published rules.

    Base table: 1 WCU per started KB of the item (the larger of before and after; for updates the item's final
    size, an upper bound as items only grow), doubled inside ``TransactWriteItems``. Each global secondary index
    whose key attributes the item holds is written too: 1 WCU per started KB of the projected item (ALL). Units
    are charged to the partition key they land on (the table's PK, each index's PK), so hot keys can be found.
    """

    def __init__(self, ddb: Any, table: str) -> None:
        self.ddb = ddb
        self.table = table
        described = ddb.describe_table(TableName=table)["Table"]
        self.indexes = [
            (gsi["IndexName"], next(k["AttributeName"] for k in gsi["KeySchema"] if k["KeyType"] == "HASH"))
            for gsi in described.get("GlobalSecondaryIndexes", [])
        ]
        self.requests = 0
        self.transactions = 0
        self.read_items = 0
        self.log: list[tuple[str, str, str, bool, dict[str, Any] | None]] = []  # pk, sk, kind, transactional, item

    def reset(self) -> None:
        self.requests = self.transactions = self.read_items = 0
        self.log.clear()

    def after(self, parsed: dict[str, Any], **_: Any) -> None:
        self.requests += 1
        if "Items" in parsed:
            self.read_items += len(parsed["Items"])

    def _record(self, op: str, body: dict[str, Any], transactional: bool) -> None:
        if body.get("TableName", self.table) != self.table:
            return
        if op == "Put":
            item = body["Item"]
            self.log.append((item["PK"]["S"], item["SK"]["S"], "put", transactional, item))
        elif op in ("Update", "Delete"):
            key = body["Key"]
            self.log.append((key["PK"]["S"], key["SK"]["S"], op.lower(), transactional, None))

    def transact(self, params: dict[str, Any], **_: Any) -> None:
        self.transactions += 1
        for entry in params["TransactItems"]:
            ((op, body),) = ((k, v) for k, v in entry.items() if k in ("Put", "Update", "Delete", "ConditionCheck"))
            if op != "ConditionCheck":
                self._record(op, body, True)

    def put(self, params: dict[str, Any], **_: Any) -> None:
        self._record("Put", params, False)

    def update(self, params: dict[str, Any], **_: Any) -> None:
        self._record("Update", params, False)

    def batch(self, params: dict[str, Any], **_: Any) -> None:
        for table, requests in params["RequestItems"].items():
            for request in requests:
                if "PutRequest" in request:
                    self._record("Put", {"TableName": table, **request["PutRequest"]}, False)

    def register(self) -> None:
        events = self.ddb.meta.events
        events.register("before-parameter-build.dynamodb.TransactWriteItems", self.transact)
        events.register("before-parameter-build.dynamodb.PutItem", self.put)
        events.register("before-parameter-build.dynamodb.UpdateItem", self.update)
        events.register("before-parameter-build.dynamodb.BatchWriteItem", self.batch)
        events.register("after-call.dynamodb", self.after)

    def settle(self) -> dict[str, Any]:
        """Units by kind and by partition key for the writes logged since the last ``reset``."""
        finals: dict[tuple[str, str], dict[str, Any]] = {}
        by_kind = {"event": 0, "counter": 0, "index": 0, "other": 0}
        by_key: dict[str, int] = {}
        largest = {"event": 0, "counter": 0}
        for pk, sk, kind, transactional, item in self.log:
            if item is None:
                if (pk, sk) not in finals:
                    got = self.ddb.get_item(TableName=self.table, Key={"PK": {"S": pk}, "SK": {"S": sk}})
                    finals[(pk, sk)] = got.get("Item") or {}
                item = finals[(pk, sk)]
            size = item_size(item) if item else 1
            base = units(size) * (2 if transactional else 1)
            label = (
                "event" if "#evt#" in pk else "counter" if "#ctr#" in pk or "#ext#" in pk or "#uniq#" in pk else "other"
            )
            by_kind[label] += base
            if label in largest:
                largest[label] = max(largest[label], size)
            by_key[pk] = by_key.get(pk, 0) + base
            for _index, attr in self.indexes:
                if item and attr in item and kind != "delete":
                    by_kind["index"] += units(size)
                    index_pk = f"{_index}:{item[attr]['S']}"
                    by_key[index_pk] = by_key.get(index_pk, 0) + units(size)
        return {"by_kind": by_kind, "by_key": by_key, "largest": largest}


def event_body(number: int, customer: str, at: datetime, rng: random.Random) -> dict[str, Any]:
    return {
        "event_id": f"bench-{number}",
        "event_name": "api_request",
        "external_customer_id": customer,
        "timestamp": at.isoformat(timespec="milliseconds"),
        "properties": {
            "tokens": str(rng.randrange(1, 4000)),
            "latency_ms": str(rng.randrange(5, 900)),
            "model": rng.choice(["small", "large"]),
        },
        "source": "bench",
    }


def per_event(settled: dict[str, Any], events: int) -> str:
    kinds = settled["by_kind"]
    total = sum(kinds.values())
    return (
        f"{total / events:.3f} write units per event, index replication included "
        f"(event items {kinds['event'] / events:.3f} + counters {kinds['counter'] / events:.3f} + "
        f"indexes {kinds['index'] / events:.3f} + other {kinds['other'] / events:.3f}; "
        f"largest event item {settled['largest']['event']} B, largest counter item {settled['largest']['counter']} B)"
    )


def hottest(settled: dict[str, Any], seconds: float) -> str:
    ranked = sorted(settled["by_key"].items(), key=lambda kv: -kv[1])[:3]
    return ", ".join(f"{key.split('#', 2)[-1]} {value / seconds:,.0f} WU/s" for key, value in ranked)


def raw_ceiling(ddb: Any, table: str, count: int, template: dict[str, Any]) -> float:
    """Items/s that plain BatchWriteItem (25 items, 8 threads, no conditions) reaches on the same DynamoDB with
    items shaped like the stored events."""
    from concurrent.futures import ThreadPoolExecutor

    from billing.store import attrs

    def chunk(first: int) -> None:
        items = []
        for i in range(first, min(first + 25, count)):
            item = {**template, "PK": f"raw#evt#{i}", "GSI1SK": f"{i:012d}", "GSI2SK": f"{i:012d}"}
            items.append({"PutRequest": {"Item": {k: attrs.serialize_value(v) for k, v in item.items()}}})
        pending = {table: items}
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(chunk, range(0, count, 25)))
    return count / (time.perf_counter() - t0)


def main() -> int:
    from billing import wiring
    from billing.observability import metrics
    from tests.support import aws
    from tests.support.api import Response
    from tests.support.api import call as invoke

    def call(*args: Any, **kwargs: Any) -> Response:
        # In-process, metrics are never flushed per invocation (disabled), so drop what a call buffered.
        try:
            return invoke(*args, **kwargs)
        finally:
            metrics.clear_metrics()

    with aws.moto_server() as endpoint:
        # Generous read budget: the embedded DynamoDB on a shared machine answers slower than DynamoDB does.
        names = aws.provision_template(endpoint, {"AwsReadTimeout": "30"}).tables
        from tests.support.metering import counting_reads, create_meter  # installs serializable transactions

        ddb = wiring.client("dynamodb")
        writes = Writes(ddb, names["EventsTable"])
        writes.register()

        tenant = ("tenant_bench", "env_bench")
        meters = [
            create_meter(tenant, "api_request", "COUNT"),
            create_meter(tenant, "api_request", "SUM", "tokens"),
            create_meter(tenant, "api_request", "AVG", "latency_ms"),
        ]
        rng = random.Random(42)
        start = datetime(2026, 10, 1, tzinfo=UTC)
        customers = [f"customer-{i:02d}" for i in range(CUSTOMERS)]

        # -- bulk path: 1,000-event bulks over 50 customers ---------------------------------------------------
        durations = []
        sent = 0
        for number in range(EVENTS // BULK):
            window = start + timedelta(minutes=number)  # a producer flushing once a minute
            events = [
                event_body(
                    sent + i,
                    customers[(sent + i) % CUSTOMERS],
                    window + timedelta(milliseconds=rng.randrange(60_000)),
                    rng,
                )
                for i in range(BULK)
            ]
            t0 = time.perf_counter()
            res = call("POST", "/api/v1/events/bulk", tenant=tenant, body={"events": events})
            durations.append(time.perf_counter() - t0)
            assert res.status == 202, res.text
            sent += BULK
        bulk_rate = sent / sum(durations)
        requests, transactions = writes.requests, writes.transactions
        bulk = writes.settle()
        check = call(
            "POST",
            "/api/v1/events/usage/meter",
            tenant=tenant,
            body={
                "meter_id": meters[0]["id"],
                "external_customer_id": customers[0],
                "start_time": "2026-10-01T00:00:00Z",
                "end_time": "2026-11-01T00:00:00Z",
            },
        )
        assert check.body["value"] == sent // CUSTOMERS, check.text
        print(
            f"bulk path: {sent} events over {CUSTOMERS} customers and {len(meters)} meters "
            f"in {sent // BULK} bulks of {BULK}"
        )
        print(f"  events/s (bulk function, in-process, embedded DynamoDB): {bulk_rate:,.0f}")
        print(f"  slowest 1,000-event bulk: {max(durations):.2f} s (API Gateway allows 30 s)")
        print(
            f"  DynamoDB requests per 1,000 events: {requests * 1000 / sent:.1f} "
            f"({transactions} transactions, {sent / max(1, transactions):.1f} events per transaction)"
        )
        print(f"  {per_event(bulk, sent)}")

        # -- single-event path: POST /events one by one -----------------------------------------------------
        writes.reset()
        t0 = time.perf_counter()
        for i in range(SINGLE):
            at = start + timedelta(days=1, milliseconds=i * 60_000 * CUSTOMERS // SINGLE + rng.randrange(1000))
            res = call(
                "POST", "/api/v1/events", tenant=tenant, body=event_body(10**7 + i, customers[i % CUSTOMERS], at, rng)
            )
            assert res.status == 202, res.text
        single_rate = SINGLE / (time.perf_counter() - t0)
        single = writes.settle()
        print(f"single-event path: {SINGLE} events over {CUSTOMERS} customers through POST /events, one at a time")
        print(f"  events/s (single function, in-process, one client): {single_rate:,.0f}")
        print(f"  DynamoDB requests per event: {writes.requests / SINGLE:.2f}")
        print(f"  {per_event(single, SINGLE)}")

        # -- one hot customer: write units per partition key per second of event time ------------------------
        hot = ("tenant_bench_hot", "env_bench")
        for kind, field in (("COUNT", None), ("SUM", "tokens"), ("AVG", "latency_ms")):
            create_meter(hot, "api_request", kind, field)
        writes.reset()
        seconds = HOT_SINGLE / 1000
        for i in range(HOT_SINGLE):  # 1,000 events per second of event time
            at = start + timedelta(days=2, milliseconds=i)
            assert (
                call("POST", "/api/v1/events", tenant=hot, body=event_body(2 * 10**7 + i, "hot", at, rng)).status == 202
            )
        settled = writes.settle()
        worst = max(settled["by_key"].values()) / seconds
        print(f"one customer at 1,000 single events/s ({HOT_SINGLE} events, {seconds:g} s of event time):")
        print(
            f"  busiest partition keys: {hottest(settled, seconds)}; "
            f"500 WU/s per key: {'met' if worst <= 500 else 'EXCEEDED'}"
        )
        writes.reset()
        seconds = HOT_BULK / 10_000
        for number in range(HOT_BULK // BULK):  # 10,000 events per second of event time
            first = number * BULK
            events = [
                event_body(3 * 10**7 + first + i, "hot", start + timedelta(days=3, microseconds=(first + i) * 100), rng)
                for i in range(BULK)
            ]
            assert call("POST", "/api/v1/events/bulk", tenant=hot, body={"events": events}).status == 202
        settled = writes.settle()
        worst = max(settled["by_key"].values()) / seconds
        print(f"one customer at 10,000 bulk events/s ({HOT_BULK} events, {seconds:g} s of event time):")
        print(
            f"  busiest partition keys: {hottest(settled, seconds)}; "
            f"500 WU/s per key: {'met' if worst <= 500 else 'EXCEEDED'}"
        )

        # -- the same embedded DynamoDB's raw BatchWriteItem ceiling -------------------------------------------
        sample = ddb.get_item(
            TableName=names["EventsTable"], Key={"PK": {"S": "tenant_bench#env_bench#evt#bench-0"}, "SK": {"S": "e"}}
        )
        from billing.store import attrs

        template = {k: attrs.deserialize_value(v) for k, v in sample["Item"].items()}
        ceiling = raw_ceiling(ddb, names["EventsTable"], RAW_ITEMS, template)
        print(
            "raw BatchWriteItem ceiling of this embedded DynamoDB (25 items x 8 threads, event-sized items): "
            f"{ceiling:,.0f} items/s"
        )
        print(
            f"  bulk ingestion reaches {bulk_rate / ceiling:.1%} of it; "
            f"single-event ingestion {single_rate / ceiling:.1%}"
        )

        # -- one customer, growing history: items read by a one-month query ----------------------------
        reader = ("tenant_bench_reads", "env_bench")
        read_meters = [
            create_meter(reader, "api_request", kind, field)
            for kind, field in (("COUNT", None), ("SUM", "tokens"), ("AVG", "latency_ms"))
        ]
        month_ms = 31 * 86_400_000
        stored = 0
        print("items read by a one-month usage query (2026-10-01T07:13Z .. 2026-10-31T16:47Z), one customer:")
        for level in READ_LEVELS:
            t0 = time.perf_counter()
            while stored < level:
                count = min(BULK, level - stored)
                # in time order across the month, as a producer sends them
                base = stored * month_ms // max(READ_LEVELS)
                step = month_ms // max(READ_LEVELS)
                events = [
                    {
                        "event_id": f"r-{stored + i}",
                        "event_name": "api_request",
                        "external_customer_id": "one",
                        "timestamp": (
                            start + timedelta(milliseconds=base + i * step + rng.randrange(step))
                        ).isoformat(),
                        "properties": {
                            "tokens": "3",
                            "latency_ms": str(rng.randrange(900)),
                            "model": rng.choice("abcd"),
                        },
                    }
                    for i in range(count)
                ]
                assert call("POST", "/api/v1/events/bulk", tenant=reader, body={"events": events}).status == 202
                stored += count
            figures = []
            for mt in read_meters:
                with counting_reads() as counter:
                    res = call(
                        "POST",
                        "/api/v1/events/usage/meter",
                        tenant=reader,
                        body={
                            "meter_id": mt["id"],
                            "external_customer_id": "one",
                            "start_time": "2026-10-01T07:13:00Z",
                            "end_time": "2026-10-31T16:47:00Z",
                        },
                    )
                assert res.status == 200, res.text
                figures.append(f"{mt['aggregation']['type']} {counter.items} items/{counter.requests} requests")
            print(
                f"  {level:>7,} events: " + ", ".join(figures) + f"  (loaded in {time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
