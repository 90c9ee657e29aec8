"""Reads as a tenant grows: items read, read requests, read units and handler CPU per endpoint at 100, 1,000, 10,000.

Runs on the embedded DynamoDB on loopback (the integration tier's harness) with the real handlers. One customer
with a subscription (whose ADVANCE charge finalizes an invoice in the subscription's transaction) and an OFFLINE
payment of that invoice are made through the API; their items, exactly as the API wrote them, are the template
that is copied with fresh ids (ULIDs, external id and email) to reach each size with BatchWriteItem. The counts,
per-day aggregates and day pointers of the copies are added with the functions their writes use
(``tracking.derived_ops``), and up to ``BENCH_CHECK_UP_TO`` customers the repair job (``services.read_models``)
recounts everything from the records and must find no difference. Then every endpoint is called once, measured:

- items: items DynamoDB read for the call (Query ``ScannedCount``, GetItem and BatchGetItem items);
- requests: DynamoDB read requests (GetItem, Query, BatchGetItem);
- units: read units as DynamoDB bills them, computed from the items' sizes (a Query: 0.5 per 4 KB of the items it
  read, eventually consistent, 1 when strongly consistent; GetItem and each BatchGetItem item: 1 per 4 KB, or 0.5);
- cpu: the handler thread's CPU time (ms, this machine; the embedded DynamoDB runs in another thread, not counted).

``BENCH_SIZES`` (e.g. ``100,1000``) changes the sizes. The figures of a page must not grow with the size; a deep
``offset`` does (it reads what it skips) and its cursor does not.
"""

from __future__ import annotations

import collections
import inspect
import json
import logging
import math
import os
import re
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

SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "100,1000,10000").split(",")]
TENANT = ("tenant_bench", f"env_{uuid.uuid4().hex[:8]}")
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SPREAD_DAYS = 365
CHECK_UP_TO = int(os.environ.get("BENCH_CHECK_UP_TO", "1000"))  # sizes whose derived items are recounted


class Meter:
    """Read requests, items and units of the calls made while ``active`` (botocore events of this thread)."""

    def __init__(self) -> None:
        self.active = False
        self.thread: int | None = None
        self.requests = 0
        self.items = 0
        self.units = 0.0
        self.consistent: dict[str, bool] = {}

    def reset(self) -> None:
        self.requests, self.items, self.units = 0, 0, 0.0

    def _mine(self) -> bool:
        return self.active and threading.get_ident() == self.thread

    def before(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if self._mine() and model.name in ("GetItem", "Query", "BatchGetItem"):
            self.requests += 1
            self.consistent[model.name] = bool(params.get("ConsistentRead"))
            if model.name == "BatchGetItem":
                tables = params.get("RequestItems", {}).values()
                self.consistent[model.name] = all(t.get("ConsistentRead") for t in tables)

    def after(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if not self._mine():
            return
        from billing.store.dynamo import item_bytes

        factor = 1.0 if self.consistent.get(model.name) else 0.5
        if model.name == "GetItem" and parsed.get("Item"):
            self.items += 1
            self.units += math.ceil(item_bytes(parsed["Item"]) / 4096) * factor
        elif model.name == "Query":
            self.items += int(parsed.get("ScannedCount", parsed.get("Count", 0)))
            size = sum(item_bytes(i) for i in parsed.get("Items", []))
            self.units += max(1, math.ceil(size / 4096)) * factor
        elif model.name == "BatchGetItem":
            for found in parsed.get("Responses", {}).values():
                self.items += len(found)
                self.units += sum(math.ceil(item_bytes(i) / 4096) for i in found) * factor


def partition_queries() -> None:
    """Make the embedded DynamoDB's main-table Query read one partition, as DynamoDB does (moto sorts the whole
    table for every Query: O(table) per request). Results and request counts are unchanged."""
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


def new_ulid(at: datetime) -> str:
    value = (int(at.timestamp() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_ALPHABET[(value >> (5 * (25 - i))) & 31] for i in range(26))


def _scan(client: Any, table: str) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = client.scan(**kwargs)
        for item in page["Items"]:
            out[(item["PK"]["S"], item["SK"]["S"])] = item
        if "LastEvaluatedKey" not in page:
            return out
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


DERIVED = ("#count#", "#agg", "#counter")  # counts, aggregates, day pointers, the invoice number: not copied


def template(client: Any, table: str, call: Any, plan_id: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The items one customer, subscription, invoice and payment are written as, and the ids in them."""
    before = _scan(client, table)
    cust = call(
        "POST",
        "/api/v1/customers",
        tenant=TENANT,
        body={"external_id": "tpl-ext", "name": "Template", "email": "tpl@bench.test"},
    ).body
    sub = call(
        "POST",
        "/api/v1/subscriptions",
        tenant=TENANT,
        body={"customer_id": cust["id"], "plan_id": plan_id, "currency": "usd", "billing_period": "MONTHLY"},
    ).body
    inv = call("GET", "/api/v1/invoices", tenant=TENANT, query={"customer_id": cust["id"]}).body["items"][0]
    pay = call(
        "POST",
        "/api/v1/payments",
        tenant=TENANT,
        body={
            "destination_type": "INVOICE",
            "destination_id": inv["id"],
            "payment_method_type": "OFFLINE",
            "amount": inv["amount_remaining"],
            "currency": "usd",
            "idempotency_key": "tpl-pay",
        },
    ).body
    after = _scan(client, table)
    items = [v for k, v in after.items() if k not in before and not any(d in k[0] for d in DERIVED)]
    ids = {"cust": cust["id"], "subs": sub["id"], "inv": inv["id"], "pay": pay["id"]}
    return items, ids


STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z")


def copies(items: list[dict[str, Any]], ids: dict[str, str], start: int, count: int) -> list[dict[str, Any]]:
    """``count`` copies of the template, copy ``n`` moved ``n % SPREAD_DAYS + 1`` days back (every timestamp and
    its ids' time): a tenant that grew over a year, never today."""
    text = json.dumps(items)
    out = []
    for n in range(start, start + count):
        back = timedelta(days=n % SPREAD_DAYS + 1)

        def shift(match: re.Match[str], back: timedelta = back) -> str:
            value = datetime.fromisoformat(match.group(0).replace("Z", "+00:00")) - back
            return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if "." in match.group(0) else "%Y-%m-%dT%H:%M:%SZ")

        copy = STAMP.sub(shift, text)
        copy = copy.replace("tpl-ext", f"ext-{n}").replace("tpl@bench.test", f"c{n}@bench.test")
        copy = copy.replace("tpl-pay", f"pay-{n}")
        for prefix, old in ids.items():
            copy = copy.replace(old, f"{prefix}_{new_ulid(datetime.now(UTC) - back)}")
        out.extend(json.loads(copy))
    return out


def load(client: Any, table: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 25):
        request = {table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]}
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}


def make_probes(
    call: Any, customers: Any, scope: Any, size: int, deep: str | None, first_inv: dict[str, Any], periods: Any
) -> list[tuple[str, Any]]:
    depth = max(0, size - 50)
    return [
        (
            "GET /customers?limit=50",
            lambda: call("GET", "/api/v1/customers", tenant=TENANT, query={"limit": 50}),
        ),
        (
            "GET /customers?limit=50&offset=N-50",
            lambda: call("GET", "/api/v1/customers", tenant=TENANT, query={"limit": 50, "offset": depth}),
        ),
        (
            "GET /customers?limit=50&cursor= (depth ~N-50)",
            lambda: call(
                "GET",
                "/api/v1/customers",
                tenant=TENANT,
                query={"limit": 50, **({"cursor": deep} if deep else {"offset": depth})},
            ),
        ),
        (
            "POST /customers/search external_id",
            lambda: call("POST", "/api/v1/customers/search", tenant=TENANT, body={"external_id": f"ext-{size - 1}"}),
        ),
        (
            "POST /customers/search external_ids (3)",
            lambda: call(
                "POST",
                "/api/v1/customers/search",
                tenant=TENANT,
                body={"external_ids": ["ext-1", "ext-2", f"ext-{size - 1}"]},
            ),
        ),
        (
            "POST /customers/search email",
            lambda: call("POST", "/api/v1/customers/search", tenant=TENANT, body={"email": f"c{size - 1}@bench.test"}),
        ),
        (
            "GET /customers/external/{id}",
            lambda: call("GET", f"/api/v1/customers/external/ext-{size - 1}", tenant=TENANT),
        ),
        ("webhook: customer by email", lambda: customers.by_email(scope, f"c{size - 1}@bench.test")),
        ("GET /invoices?limit=50", lambda: call("GET", "/api/v1/invoices", tenant=TENANT, query={"limit": 50})),
        (
            "GET /invoices?customer_id=",
            lambda: call("GET", "/api/v1/invoices", tenant=TENANT, query={"customer_id": first_inv["customer_id"]}),
        ),
        (
            "GET /invoices?invoice_status=FINALIZED&currency=usd",
            lambda: call(
                "GET",
                "/api/v1/invoices",
                tenant=TENANT,
                query={"limit": 50, "invoice_status": "FINALIZED", "currency": "usd"},
            ),
        ),
        (
            "POST /invoices/search subscription_id",
            lambda: call(
                "POST",
                "/api/v1/invoices/search",
                tenant=TENANT,
                body={"subscription_id": first_inv["subscription_id"]},
            ),
        ),
        (
            "GET /subscriptions?limit=50",
            lambda: call("GET", "/api/v1/subscriptions", tenant=TENANT, query={"limit": 50}),
        ),
        (
            "GET /subscriptions?subscription_status=active",
            lambda: call(
                "GET",
                "/api/v1/subscriptions",
                tenant=TENANT,
                query={"limit": 50, "subscription_status": "active"},
            ),
        ),
        ("GET /payments?limit=50", lambda: call("GET", "/api/v1/payments", tenant=TENANT, query={"limit": 50})),
        (
            "GET /payments?destination_id=",
            lambda: call("GET", "/api/v1/payments", tenant=TENANT, query={"destination_id": first_inv["id"]}),
        ),
        ("GET /plans?limit=50", lambda: call("GET", "/api/v1/plans", tenant=TENANT, query={"limit": 50})),
        ("GET /features?limit=50", lambda: call("GET", "/api/v1/features", tenant=TENANT, query={"limit": 50})),
        ("GET /prices?limit=50", lambda: call("GET", "/api/v1/prices", tenant=TENANT, query={"limit": 50})),
        *(
            (
                f"GET /dashboard/summary ({label})",
                lambda lo=lo, hi=hi: call(
                    "GET",
                    "/api/v1/dashboard/summary",
                    tenant=TENANT,
                    query={"start_time": lo.isoformat(), "end_time": hi.isoformat()},
                ),
            )
            for label, (lo, hi) in periods.items()
        ),
    ]


def derive(scope: Any, added: list[dict[str, Any]]) -> None:
    """The counts, aggregates and day pointers of the copies, as their writes would have added them (the same
    functions), summed per item and applied in bulk."""
    from billing import wiring
    from billing.store import tracking
    from billing.store.dynamo import deserialize
    from billing.store.entities import strip_keys

    table = wiring.entities()
    ops: list[dict[str, Any]] = []
    for raw in added:
        kind = raw["PK"]["S"].rsplit("#", 1)[-1]
        if kind in ("customer", "subscription", "invoice", "payment"):
            ops.extend(tracking.derived_ops(table, scope, kind, None, strip_keys(deserialize(raw))))
    table.apply_each(ops)


def main() -> int:
    from tests.support import aws

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with aws.moto_server() as endpoint:
        stack = aws.provision_template(endpoint)
        # The embedded DynamoDB answers the backfill's bulk reads slower than DynamoDB: no time-outs for the set-up.
        os.environ["BILLING_AWS_READ_TIMEOUT"] = "120"
        from billing import wiring
        from billing.scope import Scope
        from billing.services import customers, read_models
        from billing.settings import reset_settings
        from tests.support.api import call

        partition_queries()
        reset_settings()
        wiring.client.cache_clear()
        wiring.entities.cache_clear()
        client = wiring.client("dynamodb")
        table = stack.tables["EntitiesTable"]
        scope = Scope(*TENANT)
        meter = Meter()
        client.meta.events.register("provide-client-params.dynamodb", meter.before)
        client.meta.events.register("after-call.dynamodb", meter.after)
        plan = call(
            "POST",
            "/api/v1/plans",
            tenant=TENANT,
            body={
                "name": "Bench",
                "prices": [
                    {
                        "type": "FIXED",
                        "billing_model": "FLAT_FEE",
                        "amount": "29.00",
                        "currency": "usd",
                        "billing_period": "MONTHLY",
                        "invoice_cadence": "ADVANCE",
                    }
                ],
            },
        ).body
        for i in range(3):
            call(
                "POST",
                "/api/v1/features",
                tenant=TENANT,
                body={"name": f"F{i}", "type": "boolean", "lookup_key": f"f{i}"},
            )
        items, ids = template(client, table, call, plan["id"])
        print(f"template: {len(items)} items per customer (customer, claim, subscription, invoice, payment...)")
        now = datetime.now(UTC)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        periods = {
            "7 days to now": (now - timedelta(days=7), now),
            "30 days to now": (now - timedelta(days=30), now),
            "30 whole days": (midnight - timedelta(days=30), midnight),
            "365 whole days": (midnight - timedelta(days=365), midnight),
        }
        loaded = 1
        results: dict[str, dict[int, tuple[int, int, float, float]]] = collections.OrderedDict()
        for size in SIZES:
            t0 = time.perf_counter()
            added = copies(items, ids, loaded, size - loaded)
            load(client, table, added)
            derive(scope, added)
            loaded = size
            line = f"size {size}: loaded in {time.perf_counter() - t0:.0f} s"
            if size <= CHECK_UP_TO:
                check = read_models.run(scope)
                assert check.differences == 0, "\n".join(check.lines())
                line += f"; the repair job's recount of {check.records} records finds no difference"
            print(line, flush=True)
            deep = None
            remaining = max(0, size - 50)
            while remaining > 0:  # the cursor after the first N-50 customers, walked 1,000 at a time (not measured)
                take = min(1000, remaining)
                page = call(
                    "GET",
                    "/api/v1/customers",
                    tenant=TENANT,
                    query={"limit": take, **({"cursor": deep} if deep else {})},
                ).body
                deep = page["pagination"].get("next_cursor")
                remaining -= take
            first_inv = call("GET", "/api/v1/invoices", tenant=TENANT, query={"limit": 1}).body["items"][0]
            probes = make_probes(call, customers, scope, size, deep, first_inv, periods)
            for name, probe in probes:
                probe()  # warm: imports and the handler's first-call set-up are not what is measured
                meter.reset()
                meter.thread, meter.active = threading.get_ident(), True
                c0 = time.thread_time()
                res = probe()
                cpu = (time.thread_time() - c0) * 1000
                meter.active = False
                status = getattr(res, "status", 200)
                assert status == 200, (name, getattr(res, "text", res))
                results.setdefault(name, {})[size] = (meter.items, meter.requests, meter.units, cpu)
        header = "| endpoint | " + " | ".join(f"N = {s:,}" for s in SIZES) + " |"
        print()
        print("items read / read requests / read units / handler CPU ms")
        print()
        print(header)
        print("|---|" + "---|" * len(SIZES))
        for name, by_size in results.items():
            cells = []
            for s in SIZES:
                items_read, requests, units, cpu = by_size[s]
                cells.append(f"{items_read:,} / {requests} / {units:g} / {cpu:.0f}")
            print(f"| `{name}` | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
