"""Invoice sync benchmark: 500 finalized invoices synced to the Stripe emulator.

Runs in-process against an embedded DynamoDB/SQS/KMS on loopback (the integration tier's harness: the whole template
provisioned by ``devstack.stack.provision``, every function's environment exported) and a Stripe emulator on
loopback that the template parameter ``StripeApiBase`` points at, so the product reaches it through the official
SDK over HTTP. One tenant with a Stripe connection (invoice and customer outbound on), a few customers and their
subscriptions are created through the API functions; the invoices are built with the invoicing service's own record
builders (``invoice_record``, ``finalize_ops``: the finalized invoice, its number and its sync outbox item, in one
transaction each), one per billing period of each subscription. Customers are synced to Stripe during set-up, as
the sync queue does when they are created.

The timed phase syncs every invoice with ``invoice_sync.sync_invoice`` from a pool of ``StripeSyncConcurrency``
threads (the template's default: the sync queue's maximum concurrency). Prints:

- invoices synced per minute at that concurrency;
- Stripe API calls per invoice, by method and path;
- duplicates: Stripe invoices per our invoice (metadata ``flexprice_invoice_id``) and invoice items per our line
  must each be exactly 1; violations are counted;
- a check that every Stripe invoice's total equals ours in minor units;
- a second pass over all invoices, which must create no Stripe object.

Times are from this machine and the embedded AWS (slower than AWS); the call counts are exact.
``BENCH_INVOICES`` shrinks the run.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "billing")]
os.chdir(ROOT)
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

INVOICES = int(os.environ.get("BENCH_INVOICES", "500"))
CUSTOMERS = 5
SEND_INVOICE_CUSTOMERS = 2  # the others are charge_automatically
TENANT = ("tenant_bench", f"env_{uuid.uuid4().hex[:8]}")
_ID_SEGMENT = re.compile(r"^[a-z]+_[A-Za-z0-9]+$")


def endpoint_of(method: str, path: str) -> str:
    return f"{method} " + "/".join("{id}" if _ID_SEGMENT.match(p) else p for p in path.split("/"))


def build_invoices(scope: Any, subs: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """``count`` FINALIZED invoices written as the invoicing worker writes them (record + number + outbox item)."""
    from billing import wiring
    from billing.services import invoicing
    from billing.timeutil import iso

    table = wiring.entities()
    out: list[dict[str, Any]] = []
    counter = invoicing.read_counter(scope)
    for n in range(count):
        sub = subs[n % len(subs)]
        period = invoicing.schedule_of(sub).at_index(n // len(subs))
        tokens = Decimal(1000 + (n * 37) % 5000)
        lines = [
            {
                "id": "inv_line_001",
                "price_id": sub["line_items"][0]["price"]["id"],
                "price_type": "FIXED",
                "display_name": "Platform fee",
                "currency": sub["currency"],
                "quantity": Decimal(1),
                "amount": Decimal("29.00"),
                "period_start": iso(period.start),
                "period_end": iso(period.end),
                "kind": "charge",
                "metadata": {},
            },
            {
                "id": "inv_line_002",
                "price_id": sub["line_items"][-1]["price"]["id"],
                "price_type": "USAGE",
                "display_name": "API calls",
                "currency": sub["currency"],
                "quantity": tokens,
                "amount": (tokens * Decimal("0.0137")).quantize(Decimal("0.01")),
                "period_start": iso(period.start),
                "period_end": iso(period.end),
                "kind": "charge",
                "metadata": {},
            },
        ]
        draft = invoicing.invoice_record(
            scope,
            sub,
            f"inv_{uuid.uuid4().hex[:26].upper()}",
            period,
            lines,
            [],
            reason="SUBSCRIPTION_CYCLE",
            now=period.end,
        )
        done, ops = invoicing.finalize_ops(scope, draft, counter, period.end, skip_zero=True, expect_absent=True)
        table.transact(ops)
        counter += 1
        out.append(done)
    return out


def main() -> int:
    from devstack import dynamo_txn
    from devstack import template as tpl
    from stripe_emulator.server import StripeEmulator
    from tests.support import aws

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    template = tpl.load()
    concurrency = int(template["Parameters"]["StripeSyncConcurrency"]["Default"])
    emulator = StripeEmulator(port=0)
    emulator.start()
    try:
        with aws.moto_server() as endpoint:
            aws.provision_template(endpoint, {"StripeApiBase": emulator.url})
            dynamo_txn.install()
            return run(emulator, concurrency)
    finally:
        emulator.stop()


def run(emulator: Any, concurrency: int) -> int:
    from billing.domain.money import to_minor_units
    from billing.observability import metrics
    from billing.scope import Scope
    from billing.services import invoice_sync, stripe_sync
    from billing.settings import reset_settings
    from billing.store import invoices as keys
    from tests.support.api import call
    from tests.support.metering import create_meter

    reset_settings()
    scope = Scope(*TENANT)
    key = f"sk_test_{uuid.uuid4().hex}"
    t0 = time.perf_counter()
    res = call(
        "POST",
        "/api/v1/connections",
        tenant=TENANT,
        body={
            "name": "Stripe",
            "provider_type": "stripe",
            "encrypted_secret_data": {"secret_key": key, "webhook_secret": "whsec_test_0123456789"},
            "sync_config": {"customer": {"outbound": True}, "invoice": {"outbound": True}},
        },
    )
    assert res.status == 201, res.text
    meter = create_meter(TENANT, "api_call", "SUM", "tokens")
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
                    "invoice_cadence": "ARREAR",
                },
                {
                    "type": "USAGE",
                    "billing_model": "FLAT_FEE",
                    "amount": "0.0137",
                    "currency": "usd",
                    "billing_period": "MONTHLY",
                    "invoice_cadence": "ARREAR",
                    "meter_id": meter["id"],
                },
            ],
        },
    )
    assert plan.status == 201, plan.text
    subs: list[dict[str, Any]] = []
    for i in range(CUSTOMERS):
        cust = call("POST", "/api/v1/customers", tenant=TENANT, body={"external_id": f"c{i}", "name": f"C {i}"})
        assert cust.status == 201, cust.text
        sub = call(
            "POST",
            "/api/v1/subscriptions",
            tenant=TENANT,
            body={
                "customer_id": cust.body["id"],
                "plan_id": plan.body["id"],
                "currency": "usd",
                "billing_period": "MONTHLY",
                "start_date": datetime(2018, 1, 1, tzinfo=UTC).isoformat(),
                "collection_method": "send_invoice" if i < SEND_INVOICE_CUSTOMERS else "charge_automatically",
            },
        )
        assert sub.status == 201, sub.text
        subs.append(keys.subscriptions().get(scope, sub.body["id"]))
        assert stripe_sync.sync_customer(scope, cust.body["id"]) is not None
    invoices = build_invoices(scope, subs, INVOICES)
    assert all(i["invoice_status"] == "FINALIZED" for i in invoices)
    print(
        f"set-up: {CUSTOMERS} customers synced to Stripe, {len(invoices)} FINALIZED invoices with outbox items "
        f"({len(subs)} subscriptions x {INVOICES // len(subs)} periods) in {time.perf_counter() - t0:.1f} s"
    )

    def sync_all() -> tuple[float, list[str]]:
        errors: list[str] = []

        def one(invoice_id: str) -> None:
            try:
                invoice_sync.sync_invoice(scope, invoice_id)
            except Exception as exc:  # reported below; the queue would redeliver the message
                errors.append(f"{invoice_id}: {type(exc).__name__}: {exc}")
            finally:
                metrics.clear_metrics()  # one invocation's metrics, as the handler flushes them

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(one, [i["id"] for i in invoices]))
        return time.perf_counter() - start, errors

    def counts() -> dict[str, int]:
        return {kind: len(emulator.objects(key, kind)) for kind in ("customer", "invoice", "invoiceitem")}

    log_start = len(emulator.request_log())
    elapsed, errors = sync_all()
    log = emulator.request_log()[log_start:]
    after_first = counts()
    calls = collections.Counter(endpoint_of(r["method"], r["path"]) for r in log)
    n = len(invoices)
    print(
        f"sync: {n} invoices in {elapsed:.1f} s with {concurrency} concurrent workers (StripeSyncConcurrency) "
        f"= {n / elapsed * 60:,.0f} invoices/minute ({len(errors)} failed)"
    )
    for line in errors[:5]:
        print(f"  failed: {line}")
    print(f"Stripe API calls per invoice: {len(log) / n:.2f} ({len(log)} calls)")
    for ep, count in sorted(calls.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {ep:<40} {count / n:.2f}/invoice ({count})")
    posts = [r for r in log if r["method"] == "POST"]
    print(
        f"POSTs with an idempotency key: {sum(1 for r in posts if r['idempotency_key'])}/{len(posts)}; "
        f"replayed: {sum(1 for r in log if r['replayed'])}"
    )

    stripe_invoices = emulator.objects(key, "invoice")
    items = emulator.objects(key, "invoiceitem")
    per_invoice = collections.Counter(s["metadata"].get("flexprice_invoice_id") for s in stripe_invoices)
    per_line = collections.Counter(
        (i["metadata"].get("flexprice_invoice_id"), i["metadata"].get("flexprice_line_item_id")) for i in items
    )
    ours = {i["id"]: i for i in invoices}
    our_lines = {(i["id"], li["id"]) for i in invoices for li in i["line_items"] if Decimal(li["amount"]) != 0}
    invoice_violations = sum(1 for inv_id in ours if per_invoice.get(inv_id, 0) != 1) + sum(
        1 for inv_id in per_invoice if inv_id not in ours
    )
    line_violations = sum(1 for k in our_lines if per_line.get(k, 0) != 1) + sum(
        1 for k in per_line if k not in our_lines
    )
    print(
        f"duplicates: Stripe invoices per our invoice != 1: {invoice_violations} "
        f"({len(stripe_invoices)} Stripe invoices for {len(ours)} of ours); invoice items per our line != 1: "
        f"{line_violations} ({len(items)} items for {len(our_lines)} lines)"
    )
    mismatches = sum(
        1
        for s in stripe_invoices
        if s["metadata"].get("flexprice_invoice_id") in ours
        and s["total"] != to_minor_units(Decimal(ours[s["metadata"]["flexprice_invoice_id"]]["total"]), "usd")
    )
    statuses = collections.Counter(s["status"] for s in stripe_invoices)
    print(
        f"totals: Stripe total == ours in minor units for {len(stripe_invoices) - mismatches}/{len(stripe_invoices)}"
        f" ({mismatches} mismatches); Stripe statuses {dict(sorted(statuses.items()))}"
    )

    log_start = len(emulator.request_log())
    elapsed2, errors2 = sync_all()
    log2 = emulator.request_log()[log_start:]
    after_second = counts()
    created = {k: after_second[k] - after_first[k] for k in after_first}
    calls2 = collections.Counter(endpoint_of(r["method"], r["path"]) for r in log2)
    print(
        f"second pass: {n} invoices in {elapsed2:.1f} s, {len(errors2)} failed, {len(log2)} Stripe calls "
        f"{dict(calls2)}; new Stripe objects created: {sum(created.values())} {created}"
    )

    ok = (
        not errors
        and not errors2
        and invoice_violations == 0
        and line_violations == 0
        and mismatches == 0
        and sum(created.values()) == 0
    )
    print(
        json.dumps(
            {
                "invoices": n,
                "concurrency": concurrency,
                "seconds": round(elapsed, 1),
                "invoices_per_minute": round(n / elapsed * 60),
                "stripe_calls_per_invoice": round(len(log) / n, 2),
                "duplicates": invoice_violations + line_violations,
                "total_mismatches": mismatches,
                "second_pass_new_objects": sum(created.values()),
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
