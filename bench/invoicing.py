"""Invoicing benchmark: 1,000 subscriptions with usage, one scheduler run, exactly one invoice each.

Runs against an embedded DynamoDB and SQS on loopback (the integration tier's harness), with the real
functions: subscriptions and customers are created through their API functions, usage through the bulk
ingestion function, then ONE run of the fan-out function (``invoicing_find_due``) queues one message per due
subscription and the worker function (``invoicing_worker``) consumes the queue in batches of 10 from
``BENCH_WORKERS`` threads (Lambda's concurrent batches). Prints:

- invoices per minute over the scheduler run (fan-out + all batches), and the fan-out's own time;
- DynamoDB requests per invoice (every request the two functions make, by operation);
- a check that every subscription got exactly one period-end invoice and that the invoice numbers are
  1..N with no gap and no duplicate.

Times are from this machine and the embedded AWS (slower than AWS); the request counts are exact.
``BENCH_SUBSCRIPTIONS`` shrinks the run.
"""

from __future__ import annotations

import collections
import inspect
import json
import logging
import os
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "billing")]
os.chdir(ROOT)
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

SUBSCRIPTIONS = int(os.environ.get("BENCH_SUBSCRIPTIONS", "1000"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "4"))
PROGRESS = bool(os.environ.get("BENCH_PROGRESS"))
TENANT = ("tenant_bench", f"env_{uuid.uuid4().hex[:8]}")


class RequestCounter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_op: collections.Counter[str] = collections.Counter()
        self.active = False

    def __call__(self, event_name: str, **_: Any) -> None:
        if self.active:
            with self.lock:
                self.by_op[event_name.rsplit(".", 1)[-1]] += 1


def partition_queries() -> None:
    """Make the embedded DynamoDB's main-table Query read one partition, as DynamoDB does.

    moto answers a Query by listing and sorting every item of the table, so each request costs O(table size) and
    a run over N subscriptions costs O(N^2) (1,000 subscriptions did not finish in 15 minutes). The results are
    the same (the partition's items, sorted by sort key by moto's own code); request counts are unaffected.
    """
    from moto.dynamodb.models.table import Table

    original = Table.query

    signature = inspect.signature(original)

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = signature.bind(self, hash_key, *args, **kwargs).arguments.get("index_name")
        if index_name or hash_key is None or not self.range_key_attr:
            return original(self, hash_key, *args, **kwargs)
        partition = list(self.items.get(hash_key, {}).values())
        self.all_items = lambda: partition
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items

    Table.query = query


def main() -> int:
    from tests.support import aws

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    with aws.moto_server() as endpoint:
        stack = aws.provision_template(endpoint)
        os.environ["INVOICE_QUEUE_URL"] = stack.queues["InvoiceQueue"].url
        from billing import wiring
        from billing.settings import reset_settings
        from devstack.events import LambdaContext, sqs_event
        from devstack.loader import load_handler
        from tests.support.api import call
        from tests.support.metering import create_meter  # installs serializable transactions

        partition_queries()

        reset_settings()
        queue = os.environ["INVOICE_QUEUE_URL"]
        sqs = wiring.client("sqs")
        meter = create_meter(TENANT, "api_call", "SUM", "tokens")
        plan = call(
            "POST",
            "/api/v1/plans",
            tenant=TENANT,
            body={
                "name": "Bench",
                "prices": [
                    {
                        "type": "USAGE",
                        "billing_model": "TIERED",
                        "tier_mode": "SLAB",
                        "currency": "usd",
                        "billing_period": "MONTHLY",
                        "invoice_cadence": "ARREAR",
                        "meter_id": meter["id"],
                        "tiers": [{"up_to": 100, "unit_amount": "0.10"}, {"up_to": None, "unit_amount": "0.05"}],
                    },
                    {
                        "type": "FIXED",
                        "billing_model": "FLAT_FEE",
                        "amount": "29.00",
                        "currency": "usd",
                        "billing_period": "MONTHLY",
                        "invoice_cadence": "ARREAR",
                    },
                ],
            },
        ).body
        start = (datetime.now(UTC) - timedelta(days=32)).replace(microsecond=0)
        t0 = time.perf_counter()
        for i in range(SUBSCRIPTIONS):
            cust = call("POST", "/api/v1/customers", tenant=TENANT, body={"external_id": f"c{i}", "name": f"C {i}"})
            sub = call(
                "POST",
                "/api/v1/subscriptions",
                tenant=TENANT,
                body={
                    "customer_id": cust.body["id"],
                    "plan_id": plan["id"],
                    "currency": "usd",
                    "billing_period": "MONTHLY",
                    "start_date": start.isoformat(),
                },
            )
            assert sub.status == 201, sub.text
        events = [
            {
                "event_id": f"e{i}",
                "event_name": "api_call",
                "external_customer_id": f"c{i}",
                "timestamp": (start + timedelta(days=3)).isoformat(),
                "properties": {"tokens": str(50 + i % 200)},
            }
            for i in range(SUBSCRIPTIONS)
        ]
        for k in range(0, len(events), 1000):
            assert (
                call("POST", "/api/v1/events/bulk", tenant=TENANT, body={"events": events[k : k + 1000]}).status == 202
            )
        print(f"set-up: {SUBSCRIPTIONS} customers, subscriptions and usage events in {time.perf_counter() - t0:.1f} s")

        counter = RequestCounter()
        wiring.client("dynamodb").meta.events.register("before-call.dynamodb", counter)
        find_due = load_handler(ROOT / "functions/invoicing_find_due/app.py")
        worker = load_handler(ROOT / "functions/invoicing_worker/app.py")
        counter.active = True
        run0 = time.perf_counter()
        fan_out = find_due({}, LambdaContext("find-due", timeout_ms=120_000))
        fan_out_s = time.perf_counter() - run0
        failures = collections.Counter[str]()
        batches: list[tuple[int, float]] = []

        def consume() -> None:
            idle = 0
            while idle < 2:
                got = sqs.receive_message(
                    QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageSystemAttributeNames=["All"]
                ).get("Messages", [])
                if not got:
                    idle += 1
                    time.sleep(0.2)
                    continue
                idle = 0
                b0 = time.perf_counter()
                result = worker(
                    sqs_event("arn:aws:sqs:us-east-1:123456789012:InvoiceQueue", got),
                    LambdaContext("worker", timeout_ms=60_000),
                )
                with counter.lock:
                    batches.append((len(got), time.perf_counter() - b0))
                    if PROGRESS and len(batches) % 10 == 0:
                        done = sum(n for n, _ in batches)
                        print(f"  {done} messages, last batch {batches[-1][1]:.1f} s", flush=True)
                failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
                for msg in got:
                    if msg["MessageId"] in failed:
                        failures["retried"] += 1
                        sqs.change_message_visibility(
                            QueueUrl=queue, ReceiptHandle=msg["ReceiptHandle"], VisibilityTimeout=0
                        )
                    else:
                        sqs.delete_message(QueueUrl=queue, ReceiptHandle=msg["ReceiptHandle"])

        threads = [threading.Thread(target=consume) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - run0
        counter.active = False

        # Read every invoice straight from the table (a long read timeout: the whole partition in one go).
        from billing.store.dynamo import Table

        reader = Table(aws.aws_client("dynamodb", endpoint), wiring.entities().name)
        reader.client.meta.config.read_timeout = 300
        items = reader.query(f"{TENANT[0]}#{TENANT[1]}#invoice")
        cycle = [i for i in items if i["billing_reason"] == "SUBSCRIPTION_CYCLE"]
        per_sub = collections.Counter(i["subscription_id"] for i in cycle)
        numbers = sorted(int(i["invoice_number"].split("-")[-1]) for i in cycle if i.get("invoice_number"))
        exactly_once = len(per_sub) == SUBSCRIPTIONS and set(per_sub.values()) == {1}
        gap_free = numbers == list(range(1, len(cycle) + 1))
        requests = sum(counter.by_op.values())
        print(f"fan-out: {fan_out['sent']} messages queued in {fan_out_s:.2f} s")
        slowest = max(t for _, t in batches)
        print(
            f"worker: {len(batches)} batches, mean {sum(t for _, t in batches) / len(batches):.2f} s, "
            f"slowest {slowest:.2f} s"
        )
        print(
            f"scheduler run: {len(cycle)} invoices in {elapsed:.1f} s with {WORKERS} concurrent batches "
            f"= {len(cycle) / elapsed * 60:,.0f} invoices/minute ({failures['retried']} message retries)"
        )
        print(
            f"DynamoDB requests per invoice: {requests / max(1, len(cycle)):.1f} "
            f"({', '.join(f'{op} {n / max(1, len(cycle)):.1f}' for op, n in counter.by_op.most_common())})"
        )
        totals = sorted(i["total"] for i in cycle)
        print(f"invoice totals range {totals[0]} .. {totals[-1]} usd")
        print(
            f"exactly one invoice per subscription: {'yes' if exactly_once else 'NO'}; "
            f"numbers 1..{len(numbers)} gap-free and unique: {'yes' if gap_free else 'NO'}"
        )
        print(json.dumps({"invoices": len(cycle), "seconds": round(elapsed, 1), "requests": requests}))
        return 0 if exactly_once and gap_free else 1


if __name__ == "__main__":
    raise SystemExit(main())
