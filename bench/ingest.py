"""Ingestion benchmark: 20,000 events over 50 customers and 3 meters through the bulk endpoint.

Runs the real bulk and usage functions against an embedded DynamoDB on loopback (the integration tier's
harness), counts every DynamoDB request the functions make, and prints:

- events/s through the bulk function (1,000-event bulks; the slowest bulk's duration too);
- DynamoDB requests per 1,000 events;
- write units per event by DynamoDB's published rules: 1 WCU per started KB of the larger of the item before
  and after the write, doubled inside transactions; index replication (1 WCU per started KB per index written)
  is printed separately;
- items read by a one-month usage query at 1k, 10k and 100k stored events of one customer.

Times are from this machine and the embedded DynamoDB (slower than DynamoDB); the counts are exact.
``BENCH_EVENTS`` and ``BENCH_READ_LEVELS`` (comma-separated) shrink the run.
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

EVENTS = int(os.environ.get("BENCH_EVENTS", "20000"))
CUSTOMERS = 50
BULK = 1000
READ_LEVELS = [int(x) for x in os.environ.get("BENCH_READ_LEVELS", "1000,10000,100000").split(",")]
INDEXES_PER_EVENT = 2  # GSI1 (by name) and GSI2 (by customer), ALL projection


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


class Meter:
    """Counts the functions' DynamoDB requests and the write units of their transactions."""

    def __init__(self, ddb: Any, table: str) -> None:
        self.ddb = ddb
        self.table = table
        self.requests = 0
        self.transactions = 0
        self.put_units = 0
        self.index_units = 0
        self.updated: dict[tuple[str, str], int] = {}  # key -> updates
        self.read_items = 0
        self.max_event_size = 0

    def after(self, parsed: dict[str, Any], **_: Any) -> None:
        self.requests += 1
        if "Items" in parsed:
            self.read_items += len(parsed["Items"])

    def before(self, params: dict[str, Any], **_: Any) -> None:
        self.transactions += 1
        for op in params["TransactItems"]:
            if "Put" in op:
                size = item_size(op["Put"]["Item"])
                self.max_event_size = max(self.max_event_size, size)
                self.put_units += 2 * units(size)
                self.index_units += INDEXES_PER_EVENT * units(size)
            elif "Update" in op:
                key = op["Update"]["Key"]
                marker = (key["PK"]["S"], key["SK"]["S"])
                self.updated[marker] = self.updated.get(marker, 0) + 1

    def update_units(self) -> tuple[int, int]:
        """2 x units of each updated item's final size (items only grow, so an upper bound) per update."""
        total = 0
        biggest = 0
        for (pk, sk), count in self.updated.items():
            got = self.ddb.get_item(TableName=self.table, Key={"PK": {"S": pk}, "SK": {"S": sk}})["Item"]
            size = item_size(got)
            biggest = max(biggest, size)
            total += count * 2 * units(size)
        return total, biggest


def main() -> int:
    from billing import wiring
    from tests.support import aws
    from tests.support.api import call

    with aws.moto_server() as endpoint:
        names = aws.provision_template(endpoint).tables
        from tests.support.metering import counting_reads, create_meter  # installs serializable transactions

        ddb = wiring.client("dynamodb")
        meter = Meter(ddb, names["EventsTable"])
        ddb.meta.events.register("before-parameter-build.dynamodb.TransactWriteItems", meter.before)
        ddb.meta.events.register("after-call.dynamodb", meter.after)

        tenant = ("tenant_bench", "env_bench")
        meters = [
            create_meter(tenant, "api_request", "COUNT"),
            create_meter(tenant, "api_request", "SUM", "tokens"),
            create_meter(tenant, "api_request", "AVG", "latency_ms"),
        ]
        rng = random.Random(42)
        start = datetime(2026, 10, 1, tzinfo=UTC)
        customers = [f"customer-{i:02d}" for i in range(CUSTOMERS)]
        durations = []
        sent = 0
        for number in range(EVENTS // BULK):
            window = start + timedelta(minutes=number)  # a producer flushing once a minute
            events = [
                {
                    "event_id": f"bench-{sent + i}",
                    "event_name": "api_request",
                    "external_customer_id": customers[(sent + i) % CUSTOMERS],
                    "timestamp": (window + timedelta(milliseconds=rng.randrange(60_000))).isoformat(),
                    "properties": {
                        "tokens": str(rng.randrange(1, 4000)),
                        "latency_ms": str(rng.randrange(5, 900)),
                        "model": rng.choice(["small", "large"]),
                    },
                    "source": "bench",
                }
                for i in range(BULK)
            ]
            t0 = time.perf_counter()
            res = call("POST", "/api/v1/events/bulk", tenant=tenant, body={"events": events})
            durations.append(time.perf_counter() - t0)
            assert res.status == 202, res.text
            sent += BULK
        elapsed = sum(durations)
        requests, transactions = meter.requests, meter.transactions
        update_units, biggest_counter = meter.update_units()
        total_units = meter.put_units + update_units
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
            f"ingested {sent} events over {CUSTOMERS} customers and {len(meters)} meters "
            f"in {sent // BULK} bulks of {BULK}"
        )
        print(f"  events/s (bulk function, in-process, embedded DynamoDB): {sent / elapsed:,.0f}")
        print(f"  slowest 1,000-event bulk: {max(durations):.2f} s (API Gateway allows 30 s)")
        print(
            f"  DynamoDB requests per 1,000 events: {requests * 1000 / sent:.1f} "
            f"({transactions} transactions, {sent / transactions:.1f} events per transaction)"
        )
        print(
            f"  write units per event (table, transactional): {total_units / sent:.3f} "
            f"(event puts {meter.put_units / sent:.2f} + counter updates {update_units / sent:.3f}; "
            f"largest event item {meter.max_event_size} B, largest counter item {biggest_counter} B)"
        )
        print(
            f"  index write units per event (GSI1 + GSI2 replication, not transactional): "
            f"{meter.index_units / sent:.2f}; all writes: {(total_units + meter.index_units) / sent:.3f}"
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
