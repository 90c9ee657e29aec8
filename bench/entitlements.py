"""Entitlement checks benchmark: items read and warm latency of the customer's request-path reads.

The template is provisioned on an embedded AWS on loopback (the integration tier's harness). One environment gets a
plan with ``BENCH_ENTITLEMENTS`` entitlements (one metered feature with a usage limit, the rest boolean), a
customer subscribed to it, and ``BENCH_EVENTS`` usage events. Each endpoint's real handler is invoked in-process
``BENCH_CALLS`` times after a warm-up; every DynamoDB read the call makes is counted (requests, and items returned
by GetItem, Query and BatchGetItem, both tables), and the latency's median and p95 are printed.

Times are from this machine and the embedded AWS (slower than DynamoDB); the item counts are what DynamoDB reads.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import statistics
import sys
import time
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "billing")]
os.chdir(ROOT)
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

CALLS = int(os.environ.get("BENCH_CALLS", "200"))
ENTITLEMENTS = int(os.environ.get("BENCH_ENTITLEMENTS", "10"))
EVENTS = int(os.environ.get("BENCH_EVENTS", "200"))
WARMUP = 10


class Reads:
    """Counts DynamoDB read requests and the items they returned (a botocore hook on the shared client)."""

    def __init__(self) -> None:
        self.requests = 0
        self.items = 0

    def __call__(self, http_response: Any = None, parsed: Any = None, model: Any = None, **_: Any) -> None:
        name = getattr(model, "name", "")
        if name not in ("GetItem", "Query", "BatchGetItem") or not isinstance(parsed, dict):
            return
        self.requests += 1
        if name == "GetItem":
            self.items += 1 if parsed.get("Item") else 0
        elif name == "Query":
            self.items += len(parsed.get("Items") or [])
        else:
            self.items += sum(len(v) for v in (parsed.get("Responses") or {}).values())


def main() -> None:
    from billing import wiring
    from tests.support import aws
    from tests.support.api import call
    from tests.support.invoicing import fixed, setup, subscribe, use

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    sink = io.StringIO()
    with aws.moto_server() as endpoint, contextlib.redirect_stdout(sink):
        aws.provision_template(endpoint)
        suffix = uuid.uuid4().hex[:10]
        tenant = (f"tenant_{suffix}", f"env_{suffix}")
        ctx = setup(tenant, lambda meter: [fixed("10", "ADVANCE")])
        plan = ctx["plan"]["id"]
        metered = call(
            "POST", "/api/v1/features", tenant=tenant,
            body={"name": "Tokens", "type": "metered", "meter_id": ctx["meter"]["id"]},
        ).body  # fmt: skip
        call(
            "POST", "/api/v1/entitlements", tenant=tenant,
            body={"plan_id": plan, "feature_id": metered["id"], "feature_type": "metered", "usage_limit": 10**6},
        )  # fmt: skip
        for n in range(ENTITLEMENTS - 1):
            flag = call("POST", "/api/v1/features", tenant=tenant, body={"name": f"Flag {n}", "type": "boolean"}).body
            res = call(
                "POST", "/api/v1/entitlements", tenant=tenant,
                body={"plan_id": plan, "feature_id": flag["id"], "feature_type": "boolean"},
            )  # fmt: skip
            assert res.status == 201, res.text
        now = datetime.now(UTC).replace(microsecond=0)
        sub = subscribe(tenant, ctx, start_date=(now - timedelta(days=3)).isoformat().replace("+00:00", "Z"))
        for n in range(EVENTS):
            use(tenant, ctx, 1, (now - timedelta(minutes=n % 600)).isoformat().replace("+00:00", "Z"))

        reads = Reads()
        wiring.client("dynamodb").meta.events.register("after-call.dynamodb", reads)
        customer = ctx["customer"]["id"]
        checks = [
            ("GET /customers/{id}/entitlements", f"/api/v1/customers/{customer}/entitlements", None),
            ("GET /customers/external/{id}/entitlements", "/api/v1/customers/external/acme/entitlements", None),
            ("GET /subscriptions/{id}/entitlements", f"/api/v1/subscriptions/{sub['id']}/entitlements", None),
            ("GET /customers/usage", "/api/v1/customers/usage", {"customer_id": customer}),
        ]
        results = []
        for label, path, query in checks:
            for _ in range(WARMUP):
                assert call("GET", path, tenant=tenant, query=query).status == 200
            reads.requests = reads.items = 0
            times = []
            for _ in range(CALLS):
                started = time.perf_counter()
                res = call("GET", path, tenant=tenant, query=query)
                times.append((time.perf_counter() - started) * 1000)
                assert res.status == 200, res.text
            times.sort()
            results.append(
                (
                    label,
                    reads.requests / CALLS,
                    reads.items / CALLS,
                    statistics.median(times),
                    times[int(len(times) * 0.95)],
                )
            )
    print(f"Entitlement checks: {ENTITLEMENTS} entitlements on the plan, 1 subscription, {EVENTS} usage events, "
          f"{CALLS} warm calls each (in-process handler, embedded AWS on loopback)")  # fmt: skip
    print(f"  {'endpoint':44} {'reads/call':>10} {'items/call':>10} {'p50 ms':>8} {'p95 ms':>8}")
    for label, requests, items, p50, p95 in results:
        print(f"  {label:44} {requests:10.1f} {items:10.1f} {p50:8.2f} {p95:8.2f}")
    print("  (reads include the API key's request-counter check only when the authorizer could not answer: none here)")


if __name__ == "__main__":
    main()
