"""Counts and per-day aggregates equal a full recount after racing writers.

Given one environment where threads concurrently create customers, subscribe them (each subscription finalizes an
ADVANCE invoice in its transaction), archive customers, pay invoices (OFFLINE, in parts, several payers per invoice),
void invoices and cancel subscriptions, when the writers are done, then the repair job's recount from the records
finds no difference in any count or aggregate, every list's total equals what is stored, and the dashboard summary
(aggregates for whole days, records for partial days) equals a brute-force computation over every record.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from billing.schemas.dashboard import DashboardQuery
from billing.services import dashboard, read_models
from billing.store.entities import strip_keys
from billing.timeutil import parse_iso, utcnow
from tests.support.api import call
from tests.support.invoicing import fixed, scope, setup

WORKERS = 6


def _ok(res: Any, *statuses: int) -> dict[str, Any]:
    assert res.status in statuses, res.text
    return dict(res.body or {})


def _race(tasks: list[Any]) -> list[Any]:
    random.Random(13).shuffle(tasks)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(lambda task: task(), tasks))


def _records(tenant: tuple[str, str], kind: str) -> list[dict[str, Any]]:
    return [strip_keys(i) for i in dashboard.partition(scope(tenant), kind)]


def _brute(tenant: tuple[str, str], start: datetime, end: datetime, now: datetime) -> dict[str, Any]:
    """The dashboard's definitions applied to every stored record."""

    def within(value: Any) -> bool:
        return bool(value) and start <= parse_iso(str(value)) < end

    out: dict[str, Any] = {"revenue": {}, "created": 0, "by_status": {}, "finalized": 0, "by_payment_status": {}}
    out.update(succeeded=0, failed=0, subs={"created": 0, "cancelled": 0, "churned": 0, "at_start": 0, "at_end": 0})
    zero = Decimal(0)
    for inv in _records(tenant, "invoice"):
        if within(inv.get("created_at")):
            out["created"] += 1
            out["by_status"][inv["invoice_status"]] = out["by_status"].get(inv["invoice_status"], 0) + 1
        if inv["invoice_status"] == "FINALIZED" and within(inv.get("finalized_at")):
            out["finalized"] += 1
            out["by_payment_status"][inv["payment_status"]] = out["by_payment_status"].get(inv["payment_status"], 0) + 1
            row = out["revenue"].setdefault(inv["currency"], [zero] * 4)
            row[0] += Decimal(inv["total"])
            row[1] += Decimal(inv.get("amount_paid") or 0)
            row[2] += Decimal(inv.get("amount_remaining") or 0)
            row[3] += 1
    for kind in ("payment", "stripe_payment"):
        for pay in _records(tenant, kind):
            if pay["payment_status"] in ("SUCCEEDED", "PARTIALLY_REFUNDED", "REFUNDED") and within(
                pay.get("succeeded_at")
            ):
                out["succeeded"] += 1
                out.setdefault("collected", zero)
                out["collected"] += Decimal(pay["amount"])
            elif pay["payment_status"] == "FAILED" and within(pay.get("failed_at")):
                out["failed"] += 1
    for sub in _records(tenant, "subscription"):
        began, ended = dashboard.lifetime(sub, now)
        at_start = began < start and (ended is None or ended >= start)
        ended_in = ended is not None and start <= ended < end
        subs = out["subs"]
        subs["at_start"] += int(at_start)
        subs["at_end"] += int(began < end and (ended is None or ended >= end))
        subs["created"] += int(within(sub.get("created_at")))
        subs["cancelled"] += int(ended_in)
        subs["churned"] += int(at_start and ended_in)
    out["customers"] = sum(1 for c in _records(tenant, "customer") if within(c.get("created_at")))
    return out


def _summary(tenant: tuple[str, str], start: datetime, end: datetime, now: datetime) -> dict[str, Any]:
    got = dashboard.summary(scope(tenant), DashboardQuery(start_time=start, end_time=end), now)
    nonzero = lambda d: {k: v for k, v in d.items() if v}  # noqa: E731
    return {
        "revenue": {
            c: [r["invoiced"], r["paid"], r["outstanding"], r["invoice_count"]]
            for c, r in got["revenue"].items()
            if r["invoice_count"]
        },
        "created": got["invoices"]["created"],
        "by_status": nonzero(got["invoices"]["by_status"]),
        "finalized": got["invoices"]["finalized"],
        "by_payment_status": nonzero(got["invoices"]["by_payment_status"]),
        "succeeded": got["payments"]["succeeded"],
        "failed": got["payments"]["failed"],
        "subs": {
            "created": got["subscriptions"]["created"],
            "cancelled": got["subscriptions"]["cancelled"],
            "churned": got["subscriptions"]["churned"],
            "at_start": got["subscriptions"]["active_at_start"],
            "at_end": got["subscriptions"]["active_at_end"],
        },
        "customers": got["customers"]["created"],
        **({"collected": sum(r["collected"] for r in got["revenue"].values())} if got["payments"]["succeeded"] else {}),
    }


def test_racing_writers_leave_counts_and_aggregates_equal_to_a_recount(tenant):
    ctx = setup(tenant, lambda _meter: [fixed("30.00", "ADVANCE")], customer="seed")
    plan_id = ctx["plan"]["id"]
    started = utcnow()

    def customer(i: int) -> Any:
        return lambda: _ok(
            call(
                "POST",
                "/api/v1/customers",
                tenant=tenant,
                body={"external_id": f"c{i}", "name": "C", "email": f"c{i % 4}@x.test"},
            ),
            201,
        )

    custs = _race([customer(i) for i in range(14)])

    def subscribe(c: dict[str, Any]) -> Any:
        body = {"customer_id": c["id"], "plan_id": plan_id, "currency": "usd", "billing_period": "MONTHLY"}
        return lambda: _ok(call("POST", "/api/v1/subscriptions", tenant=tenant, body=body), 201)

    def archive(c: dict[str, Any]) -> Any:
        return lambda: call("DELETE", f"/api/v1/customers/{c['id']}", tenant=tenant).status

    subs = [
        s
        for s in _race(
            [*(subscribe(c) for c in custs[:9]), *(archive(c) for c in custs[11:]), customer(20), customer(21)]
        )
        if isinstance(s, dict) and "plan_id" in s
    ]
    assert len(subs) == 9
    invoices = [i for i in call("GET", "/api/v1/invoices", tenant=tenant, query={"limit": 100}).body["items"]]
    assert len(invoices) == 9 and all(i["invoice_status"] == "FINALIZED" for i in invoices)

    def pay(invoice: dict[str, Any], amount: str) -> Any:
        body = {
            "destination_type": "INVOICE",
            "destination_id": invoice["id"],
            "payment_method_type": "OFFLINE",
            "amount": amount,
            "currency": "usd",
        }
        return lambda: call("POST", "/api/v1/payments", tenant=tenant, body=body).status

    def void(invoice: dict[str, Any]) -> Any:
        return lambda: call("POST", f"/api/v1/invoices/{invoice['id']}/void", tenant=tenant).status

    def cancel(sub: dict[str, Any]) -> Any:
        body = {"cancellation_type": "immediate", "cancel_immediately_invoice_policy": "skip"}
        return lambda: call("POST", f"/api/v1/subscriptions/{sub['id']}/cancel", tenant=tenant, body=body).status

    statuses = _race(
        [
            *(pay(i, "10.00") for i in invoices[:5]),
            *(pay(i, "20.00") for i in invoices[:5]),
            *(pay(i, "30.00") for i in invoices[5:7]),
            *(void(i) for i in invoices[7:]),
            *(cancel(s) for s in subs[:3]),
            archive(custs[10]),
            customer(22),
        ]
    )
    assert statuses.count(201) >= 10, (
        statuses
    )  # a payer that lost a race to the invoice is refused (409), never half-written

    report = read_models.run(scope(tenant))
    assert report.records > 0
    assert report.differences == 0, "\n".join(report.lines())

    def total(path: str, **query: Any) -> int:
        return int(call("GET", path, tenant=tenant, query=query or None).body["pagination"]["total"])

    stored_customers = _records(tenant, "customer")
    assert total("/api/v1/customers") == sum(c["status"] == "published" for c in stored_customers)
    assert total("/api/v1/customers", status="archived") == sum(c["status"] == "archived" for c in stored_customers)
    assert total("/api/v1/invoices") == len(_records(tenant, "invoice"))
    assert total("/api/v1/invoices", invoice_status="VOIDED") == 2
    assert total("/api/v1/invoices", payment_status="SUCCEEDED", limit=1) == sum(
        i["payment_status"] == "SUCCEEDED" for i in _records(tenant, "invoice")
    )
    assert total("/api/v1/subscriptions") == 9
    assert total("/api/v1/subscriptions", subscription_status="cancelled") == 3
    assert total("/api/v1/payments", currency="usd") == len(_records(tenant, "payment"))

    # The whole of today as aggregates (seen three days later), and a period starting and ending inside today.
    later = started + timedelta(days=3)
    midnight = started.replace(hour=0, minute=0, second=0, microsecond=0)
    for start, end, now in (
        (midnight - timedelta(hours=7), midnight + timedelta(days=1, hours=5), later),
        (started - timedelta(seconds=1), utcnow() + timedelta(minutes=5), utcnow() + timedelta(minutes=5)),
        (started + timedelta(milliseconds=1), midnight + timedelta(days=2), later),
    ):
        assert _summary(tenant, start, end, now) == _brute(tenant, start, end, now)
