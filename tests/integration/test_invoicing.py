"""Period-end invoicing against the embedded DynamoDB and SQS: fan-out, worker, numbering, retries, late usage."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from unittest import mock

import pytest

from billing import wiring
from billing.services import invoicing
from billing.store import invoices as keys
from devstack.events import LambdaContext
from devstack.loader import load_handler
from tests.support.api import call
from tests.support.invoicing import (
    fixed,
    invoices,
    invoke_worker,
    make_queue,
    run_scheduler,
    scope,
    setup,
    subscribe,
    usd_usage,
    use,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def queue(aws_endpoint):
    return make_queue(aws_endpoint)


def cycle_invoices(tenant, **query):
    return [i for i in invoices(tenant, **query) if i["billing_reason"] == "SUBSCRIPTION_CYCLE"]


def numbers(tenant):
    return sorted(i["invoice_number"] for i in invoices(tenant) if i["invoice_number"])


# -- every pricing model, hand-computed ------------------------------------------------------------------------

TIERS = [{"up_to": 1000, "unit_amount": "0.05"}, {"up_to": None, "unit_amount": "0.04", "flat_amount": "10"}]
CASES = [
    # (name, price fields, currency, tokens, expected total)
    ("flat fee usage", {"amount": "0.10"}, "usd", 1234, "123.40"),
    (
        "package round up",
        {"billing_model": "PACKAGE", "amount": "5", "transform_quantity": {"divide_by": 100, "round": "up"}},
        "usd",
        1234,
        "65.00",
    ),
    (
        "package round down",
        {"billing_model": "PACKAGE", "amount": "5", "transform_quantity": {"divide_by": 100, "round": "down"}},
        "usd",
        1234,
        "60.00",
    ),
    # 1234 units all at tier 2: 1234 x 0.04 + 10
    (
        "tiered volume",
        {"billing_model": "TIERED", "amount": None, "tier_mode": "VOLUME", "tiers": TIERS},
        "usd",
        1234,
        "59.36",
    ),
    # 1000 x 0.05 + 234 x 0.04 + 10
    (
        "tiered slab",
        {"billing_model": "TIERED", "amount": None, "tier_mode": "SLAB", "tiers": TIERS},
        "usd",
        1234,
        "69.36",
    ),
    # 1235 x 1.5 = 1852.5 yen -> 1853 (half up, 0 decimals)
    ("jpy", {"amount": "1.5", "currency": "jpy"}, "jpy", 1235, "1853"),
    # 1234 x 0.00125 = 1.5425 dinar -> 1.543 (half up, 3 decimals)
    ("kwd", {"amount": "0.00125", "currency": "kwd"}, "kwd", 1234, "1.543"),
]


@pytest.mark.parametrize(("name", "fields", "currency", "tokens", "expected"), CASES, ids=[c[0] for c in CASES])
def test_every_pricing_model_against_hand_computed_invoices(tenant, queue, name, fields, currency, tokens, expected):
    ctx = setup(tenant, lambda mid: [usd_usage(mid, **fields), fixed("20.00", currency=currency)])
    sub = subscribe(tenant, ctx, currency=currency, start_date="2026-01-15T00:00:00Z")
    use(tenant, ctx, tokens - 1, "2026-01-20T08:00:00Z")
    use(tenant, ctx, 1, "2026-02-14T23:59:00Z")
    use(tenant, ctx, 999, "2026-02-15T00:00:00Z")  # next period: not on this invoice
    assert run_scheduler(queue, at("2026-02-15T02:00:00Z"), tenant) == 1
    (inv,) = cycle_invoices(tenant)
    assert inv["subscription_id"] == sub["id"] and inv["currency"] == currency
    assert (inv["period_start"], inv["period_end"]) == ("2026-01-15T00:00:00Z", "2026-02-15T00:00:00Z")
    usage_line = next(li for li in inv["line_items"] if li["price_type"] == "USAGE")
    fixed_line = next(li for li in inv["line_items"] if li["price_type"] == "FIXED")
    assert usage_line["quantity"] == str(tokens) and usage_line["amount"] == expected
    fee = {"usd": "20.00", "jpy": "20", "kwd": "20.000"}[currency]
    assert fixed_line["amount"] == fee
    total = Decimal(expected) + Decimal(fee)
    assert inv["total"] == inv["subtotal"] == inv["amount_due"] == inv["amount_remaining"] == str(total)
    assert inv["amount_paid"] == str(Decimal(0).quantize(Decimal(fee) - Decimal(fee)))
    assert inv["invoice_status"] == "FINALIZED" and inv["payment_status"] == "PENDING"
    assert inv["invoice_number"] == "INV-000001"


# -- periods ---------------------------------------------------------------------------------------------------


def test_three_missed_month_end_periods_are_caught_up_in_order(tenant, queue):
    ctx = setup(tenant, lambda mid: [usd_usage(mid), fixed("20.00"), fixed("5.00", "ADVANCE")])
    sub = subscribe(tenant, ctx, start_date="2024-01-31T10:00:00Z")
    use(tenant, ctx, 10, "2024-02-10T00:00:00Z")
    use(tenant, ctx, 20, "2024-03-05T00:00:00Z")
    use(tenant, ctx, 30, "2024-04-30T09:59:00Z")
    assert run_scheduler(queue, at("2024-05-29T12:00:00Z"), tenant) == 1  # one message, three periods
    got = cycle_invoices(tenant, subscription_id=sub["id"])
    assert [(i["period_start"], i["period_end"]) for i in got] == [
        ("2024-01-31T10:00:00Z", "2024-02-29T10:00:00Z"),  # leap year: clamps to Feb 29
        ("2024-02-29T10:00:00Z", "2024-03-31T10:00:00Z"),  # back to the anchor's day
        ("2024-03-31T10:00:00Z", "2024-04-30T10:00:00Z"),
    ]
    assert [i["invoice_number"] for i in got] == ["INV-000002", "INV-000003", "INV-000004"]
    assert [i["total"] for i in got] == ["26.00", "27.00", "28.00"]  # usage + 20 arrear + 5 next period advance
    advance = next(li for li in got[0]["line_items"] if li["amount"] == "5.00")
    assert (advance["period_start"], advance["period_end"]) == ("2024-02-29T10:00:00Z", "2024-03-31T10:00:00Z")
    now = call("GET", f"/api/v1/subscriptions/{sub['id']}", tenant=tenant).body
    assert (now["current_period_start"], now["current_period_end"]) == ("2024-04-30T10:00:00Z", "2024-05-31T10:00:00Z")
    # Nothing else is due: a second run sends nothing and writes nothing.
    assert run_scheduler(queue, at("2024-05-29T12:00:00Z"), tenant) == 0
    assert numbers(tenant) == ["INV-000001", "INV-000002", "INV-000003", "INV-000004"]


def test_grace_period_holds_the_invoice_back(tenant, queue):
    ctx = setup(tenant, lambda mid: [fixed("20.00")])
    subscribe(tenant, ctx, start_date="2026-01-15T00:00:00Z")
    assert run_scheduler(queue, at("2026-02-15T00:59:00Z"), tenant) == 0
    assert cycle_invoices(tenant) == []
    assert run_scheduler(queue, at("2026-02-15T01:00:00Z"), tenant) == 1
    assert len(cycle_invoices(tenant)) == 1


# -- exactly once ----------------------------------------------------------------------------------------------


def test_scheduler_fired_twice_concurrently_gives_one_invoice_per_period(tenant, queue):
    ctx = setup(tenant, lambda mid: [usd_usage(mid), fixed("20.00")])
    others = [
        call("POST", "/api/v1/customers", tenant=tenant, body={"external_id": f"c{i}", "name": "x"}).body
        for i in range(4)
    ]
    subs = [subscribe(tenant, ctx, start_date="2026-01-15T00:00:00Z")]
    subs += [subscribe(tenant, ctx, customer_id=c["id"], start_date="2026-01-15T00:00:00Z") for c in others]
    now = at("2026-03-16T00:00:00Z")  # two closed periods each
    errors: list[BaseException] = []

    def fire():
        try:
            run_scheduler(queue, now, tenant)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fire) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    run_scheduler(queue, now, tenant)  # and once more, after the fact
    got = cycle_invoices(tenant)
    assert len(got) == 10
    assert len({(i["subscription_id"], i["period_start"]) for i in got}) == 10
    assert numbers(tenant) == [f"INV-{n:06d}" for n in range(1, 11)]
    for sub in subs:
        mine = sorted(i["period_start"] for i in got if i["subscription_id"] == sub["id"])
        assert mine == ["2026-01-15T00:00:00Z", "2026-02-15T00:00:00Z"]


def _crash_once(target: str, *, after: bool):
    original = getattr(invoicing, target)
    state = {"crashed": False}

    def step(*args, **kwargs):
        if not after and not state["crashed"]:
            state["crashed"] = True
            raise RuntimeError(f"crash before {target}")
        result = original(*args, **kwargs)
        if after and not state["crashed"]:
            state["crashed"] = True
            raise RuntimeError(f"crash after {target}")
        return result

    return mock.patch.object(invoicing, target, step), state


@pytest.mark.parametrize(
    ("target", "after"),
    [("draft", True), ("finalize", False), ("finalize", True)],
    ids=["after-draft", "before-finalize", "after-finalize"],
)
def test_a_crash_at_any_step_is_retried_without_duplicates_or_gaps(tenant, queue, target, after):
    daily = {"billing_period": "DAILY"}
    ctx = setup(tenant, lambda mid: [usd_usage(mid, **daily), fixed("20.00", **daily)])
    start = (datetime.now(UTC) - timedelta(days=3, hours=2)).replace(microsecond=0)
    sub = subscribe(tenant, ctx, billing_period="DAILY", start_date=start.isoformat())
    use(tenant, ctx, 7, (start + timedelta(hours=1)).isoformat())
    other = call("POST", "/api/v1/customers", tenant=tenant, body={"external_id": "beta", "name": "B"}).body
    sub2 = subscribe(tenant, ctx, customer_id=other["id"], billing_period="DAILY", start_date=start.isoformat())
    patch, state = _crash_once(target, after=after)
    with patch:
        invoicing.find_due(wiring.client("sqs"), queue, datetime.now(UTC))
        first = invoke_worker(queue, tenant)
        while first["received"] < 2:  # SQS may hand out fewer messages than are queued
            more = invoke_worker(queue, tenant)
            first = {
                "received": first["received"] + more["received"],
                "batchItemFailures": first["batchItemFailures"] + more["batchItemFailures"],
            }
    assert state["crashed"], first
    assert len(first["batchItemFailures"]) == 1  # only the crashed message is retried
    # The due index is global: other tests' subscriptions share the queue. Work until it is empty.
    while invoke_worker(queue, tenant)["seen"]:
        pass
    got = cycle_invoices(tenant)
    assert len(got) == 6  # three daily periods for each of two subscriptions
    assert len({(i["subscription_id"], i["period_start"]) for i in got}) == 6
    assert numbers(tenant) == [f"INV-{n:06d}" for n in range(1, 7)]
    for s in (sub, sub2):
        periods = [i["period_start"] for i in got if i["subscription_id"] == s["id"]]
        assert periods == sorted(periods) and len(periods) == 3
    first_inv = next(i for i in got if i["subscription_id"] == sub["id"])
    assert first_inv["total"] == "20.70"


# -- zero totals, cancellation ---------------------------------------------------------------------------------


def test_zero_total_is_skipped_without_a_number(tenant, queue):
    ctx = setup(tenant, lambda mid: [usd_usage(mid)])
    subscribe(tenant, ctx, start_date="2026-01-15T00:00:00Z")
    run_scheduler(queue, at("2026-02-16T00:00:00Z"), tenant)
    use(tenant, ctx, 5, "2026-02-20T00:00:00Z")
    run_scheduler(queue, at("2026-03-16T00:00:00Z"), tenant)
    skipped, billed = cycle_invoices(tenant)
    assert skipped["invoice_status"] == "SKIPPED" and skipped["invoice_number"] is None
    assert skipped["total"] == "0.00" and skipped["amount_due"] == "0.00"
    assert billed["invoice_status"] == "FINALIZED" and billed["invoice_number"] == "INV-000001"
    assert billed["total"] == "0.50"
    items = invoicing._table().query(keys.sync_pk(scope(tenant)))
    assert [(i["invoice_id"], i["status"]) for i in items] == [(billed["id"], "pending")]
    pending = invoicing._table().query(items[0]["GSI1PK"], index="GSI1")
    assert billed["id"] in {i["invoice_id"] for i in pending}


def test_cancel_at_period_end_bills_the_last_period_without_advance_charges(tenant, queue):
    ctx = setup(tenant, lambda mid: [usd_usage(mid), fixed("9.00", "ADVANCE")])
    sub = subscribe(tenant, ctx, start_date="2026-01-15T00:00:00Z")
    run_scheduler(queue, at("2026-02-16T00:00:00Z"), tenant)
    call(
        "POST", f"/api/v1/subscriptions/{sub['id']}/cancel", tenant=tenant, body={"cancellation_type": "end_of_period"}
    )
    use(tenant, ctx, 30, "2026-02-20T00:00:00Z")
    run_scheduler(queue, at("2026-05-16T00:00:00Z"), tenant)
    got = cycle_invoices(tenant)
    assert [i["total"] for i in got] == ["9.00", "3.00"]  # the last one has no next-period advance charge
    final = call("GET", f"/api/v1/subscriptions/{sub['id']}", tenant=tenant).body
    assert final["subscription_status"] == "cancelled" and final["cancelled_at"] == "2026-03-15T00:00:00Z"
    assert run_scheduler(queue, at("2026-09-16T00:00:00Z"), tenant) == 0


# -- late usage ------------------------------------------------------------------------------------------------


def test_late_usage_is_billed_once_on_the_next_invoice_at_its_periods_tiers(tenant, queue):
    tiers = [{"up_to": 100, "unit_amount": "1"}, {"up_to": None, "unit_amount": "0.5"}]
    ctx = setup(
        tenant, lambda mid: [usd_usage(mid, billing_model="TIERED", amount=None, tier_mode="SLAB", tiers=tiers)]
    )
    subscribe(tenant, ctx, start_date="2026-01-01T00:00:00Z")
    use(tenant, ctx, 80, "2026-01-10T00:00:00Z")
    run_scheduler(queue, at("2026-02-01T02:00:00Z"), tenant)
    use(tenant, ctx, 40, "2026-01-31T23:00:00Z")  # arrives after January was invoiced
    use(tenant, ctx, 10, "2026-02-10T00:00:00Z")
    run_scheduler(queue, at("2026-03-01T02:00:00Z"), tenant)
    run_scheduler(queue, at("2026-04-01T02:00:00Z"), tenant)
    jan, feb, mar = cycle_invoices(tenant)
    assert jan["total"] == "80.00"
    # February: its own 10 units, plus January's late 40 priced at January's tiers: price(120) - price(80) = 30
    assert feb["total"] == "40.00"
    (adjustment,) = [li for li in feb["line_items"] if li["metadata"]["line_type"] == "late_usage_adjustment"]
    assert adjustment["amount"] == "30.00" and adjustment["quantity"] == "40"
    assert (adjustment["period_start"], adjustment["period_end"]) == ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")
    assert adjustment["metadata"]["billed_quantity"] == "80" and adjustment["metadata"]["total_quantity"] == "120"
    assert feb["adjustment_amount"] == "30.00"
    # March: nothing new, and January's late units are not billed again.
    assert mar["invoice_status"] == "SKIPPED" and mar["line_items"][0]["amount"] == "0.00"
    assert len(mar["line_items"]) == 1


def test_the_real_functions_run_the_fan_out_and_the_worker(tenant, queue):
    ctx = setup(tenant, lambda mid: [fixed("20.00")])
    start = (datetime.now(UTC) - timedelta(days=40)).replace(microsecond=0)
    subscribe(tenant, ctx, start_date=start.isoformat())
    find_due = load_handler(Path("functions/invoicing_find_due/app.py").resolve())
    result = find_due({}, LambdaContext("find-due"))
    assert result["sent"] >= 1
    # The due index is global: other tests' subscriptions share the queue. Work until it is empty.
    while invoke_worker(queue, tenant)["seen"]:
        pass
    got = cycle_invoices(tenant)
    assert len(got) == 1 and got[0]["total"] == "20.00" and got[0]["invoice_number"] == "INV-000001"


def test_immediate_cancel_invoices_the_period_so_far_once(tenant, queue):
    ctx = setup(tenant, lambda mid: [usd_usage(mid), fixed("20.00"), fixed("9.00", "ADVANCE")])
    start = (datetime.now(UTC) - timedelta(days=10)).replace(microsecond=0)
    sub = subscribe(tenant, ctx, start_date=start.isoformat())
    use(tenant, ctx, 30, (start + timedelta(days=1)).isoformat())
    res = call(
        "POST", f"/api/v1/subscriptions/{sub['id']}/cancel", tenant=tenant, body={"cancellation_type": "immediate"}
    )
    assert res.status == 200 and res.body["status"] == "cancelled"
    cut = res.body["effective_date"]
    later = datetime.now(UTC) + timedelta(hours=2)
    assert run_scheduler(queue, later, tenant) == 1
    (final,) = cycle_invoices(tenant)
    assert (final["period_start"], final["period_end"]) == (sub["current_period_start"], cut)
    assert sorted(li["amount"] for li in final["line_items"]) == ["20.00", "3.00"]  # no next-period advance
    assert run_scheduler(queue, later + timedelta(days=60), tenant) == 0
    assert len(cycle_invoices(tenant)) == 1
