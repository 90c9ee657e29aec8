"""``GET /dashboard/summary``: exact figures from real subscriptions, invoices and payments, per currency, per tenant.

Given one tenant with three subscriptions (two in usd, one in eur) invoiced by the real scheduler in February 2026,
one of them cancelled mid-February, an OFFLINE payment and a declined card payment (made now, through the API and
the Stripe emulator), and a second tenant with its own invoice in the same month, when the summary is asked for
several periods, then every figure is exact and nothing of the other tenant is ever counted.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from billing.schemas.subscriptions import SubscriptionCancel, SubscriptionCreate
from billing.scope import Scope
from billing.services import dashboard, subscriptions
from tests.integration.test_payments import DECLINED, pay, save_card
from tests.integration.test_stripe_customer_sync import connect
from tests.support.api import call
from tests.support.invoicing import fixed, invoices, make_queue, run_scheduler, setup, usd_usage, use

FEBRUARY = {"start_time": "2026-02-01T00:00:00Z", "end_time": "2026-03-01T00:00:00Z"}
JANUARY = {"start_time": "2026-01-01T00:00:00Z", "end_time": "2026-02-01T00:00:00Z"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def fresh_tenant() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:10]
    return (f"tenant_{suffix}", f"env_{suffix}")


def customer(tenant, external_id: str) -> dict:
    res = call("POST", "/api/v1/customers", tenant=tenant, body={"external_id": external_id, "name": external_id})
    assert res.status == 201, res.text
    return dict(res.body)


def subscribe_at(tenant, plan_id: str, customer_id: str, currency: str, start: str) -> dict:
    request = SubscriptionCreate(
        customer_id=customer_id, plan_id=plan_id, currency=currency, billing_period="MONTHLY", start_date=at(start)
    )
    return subscriptions.create(Scope(*tenant), request, at(start))


def summary(tenant, **query) -> dict:
    res = call("GET", "/api/v1/dashboard/summary", tenant=tenant, query=query or None)
    assert res.status == 200, res.text
    return dict(res.body)


@pytest.fixture(scope="module")
def world(aws_endpoint, stripe_emulator):
    owner, neighbour = fresh_tenant(), fresh_tenant()
    queue = make_queue(aws_endpoint)

    ctx = setup(owner, lambda mid: [usd_usage(mid), fixed("20.00"), fixed("15.00", currency="eur")])
    plan = ctx["plan"]["id"]
    acme, beta, gamma = ctx["customer"], customer(owner, "beta"), customer(owner, "gamma")
    subs = {
        "acme": subscribe_at(owner, plan, acme["id"], "usd", "2026-01-15T00:00:00Z"),
        "beta": subscribe_at(owner, plan, beta["id"], "usd", "2026-01-20T00:00:00Z"),
        "gamma": subscribe_at(owner, plan, gamma["id"], "eur", "2026-01-10T00:00:00Z"),
    }
    use(owner, ctx, 100, "2026-01-20T08:00:00Z")  # acme: 100 tokens at 0.10 = 10.00 on top of 20.00
    assert run_scheduler(queue, at("2026-02-15T02:00:00Z"), owner) == 2  # acme and gamma; beta is not due yet
    subscriptions.cancel(
        Scope(*owner), subs["beta"]["id"], SubscriptionCancel(cancellation_type="immediate"), at("2026-02-18T00:00:00Z")
    )
    assert run_scheduler(queue, at("2026-02-19T02:00:00Z"), owner) == 1  # beta's last (shortened) period
    by_customer = {i["customer_id"]: i for i in invoices(owner)}
    assert len(by_customer) == 3
    acme_invoice, beta_invoice = by_customer[acme["id"]], by_customer[beta["id"]]
    assert acme_invoice["total"] == "30.00" and by_customer[gamma["id"]]["total"] == "15.00"
    # beta's last period ends at the cancellation; its fixed charge is billed in full (20.00)
    assert beta_invoice["period_end"] == "2026-02-18T00:00:00Z" and beta_invoice["total"] == "20.00"

    paid = pay(owner, acme_invoice, "OFFLINE")
    assert paid.status == 201 and paid.body["payment_status"] == "SUCCEEDED", paid.text
    connect(owner, f"sk_test_{uuid.uuid4().hex}", customer_outbound=False)
    save_card(owner, stripe_emulator, beta["id"], DECLINED)
    declined = pay(owner, beta_invoice, "CARD")
    assert declined.status == 201 and declined.body["payment_status"] == "FAILED", declined.text

    other = setup(neighbour, lambda mid: [fixed("99.00")])
    subscribe_at(neighbour, other["plan"]["id"], other["customer"]["id"], "usd", "2026-01-15T00:00:00Z")
    assert run_scheduler(queue, at("2026-02-15T02:00:00Z"), neighbour) == 1
    return {"owner": owner, "neighbour": neighbour, "subs": subs}


def test_a_month_of_invoicing_gives_exact_figures_per_currency(world):
    body = summary(world["owner"], **FEBRUARY)
    assert body["period"] == FEBRUARY and body["currency"] is None
    assert body["revenue"] == [
        {
            "currency": "eur",
            "invoiced_total": "15.00",
            "paid_total": "0.00",
            "outstanding_total": "15.00",
            "invoice_count": 1,
            "collected_total": "0.00",
            "refunded_total": "0.00",
            "disputed_total": "0.00",
            "collected_net_total": "0.00",
        },
        {
            "currency": "usd",
            "invoiced_total": "50.00",
            "paid_total": "30.00",
            "outstanding_total": "20.00",
            "invoice_count": 2,
            "collected_total": "0.00",
            "refunded_total": "0.00",
            "disputed_total": "0.00",
            "collected_net_total": "0.00",
        },
    ]
    invoices_ = body["invoices"]
    assert invoices_["created"] == 3 and invoices_["finalized"] == 3
    assert invoices_["by_status"] == {"DRAFT": 0, "FINALIZED": 3, "VOIDED": 0, "SKIPPED": 0}
    assert {k: v for k, v in invoices_["by_payment_status"].items() if v} == {"PENDING": 1, "SUCCEEDED": 1, "FAILED": 1}
    # both payments were made now, not in February
    assert body["payments"] == {"succeeded": 0, "failed": 0, "success_rate": None}
    assert body["subscriptions"] == {
        "active_at_start": 3,
        "active_at_end": 2,
        "created": 0,
        "cancelled": 1,
        "churned": 1,
        "churn_rate": "0.3333",
    }
    assert body["customers"] == {"created": 0}


def test_currency_filter_keeps_one_currency_only(world):
    body = summary(world["owner"], currency="EUR", **FEBRUARY)
    assert body["currency"] == "eur"
    assert [r["currency"] for r in body["revenue"]] == ["eur"]
    assert body["revenue"][0]["invoiced_total"] == "15.00"
    assert body["invoices"]["created"] == 1 and body["invoices"]["finalized"] == 1
    assert body["subscriptions"] == {
        "active_at_start": 1,
        "active_at_end": 1,
        "created": 0,
        "cancelled": 0,
        "churned": 0,
        "churn_rate": "0.0000",
    }


def test_the_default_period_is_the_last_30_days_and_counts_todays_payments(world):
    body = summary(world["owner"])
    start, end = at(body["period"]["start_time"]), at(body["period"]["end_time"])
    assert (end - start).days == 30 and abs((datetime.now(UTC) - end).total_seconds()) < 60
    assert body["payments"] == {"succeeded": 1, "failed": 1, "success_rate": "0.5000"}
    assert body["revenue"] == [
        {
            "currency": "usd",
            "invoiced_total": "0.00",
            "paid_total": "0.00",
            "outstanding_total": "0.00",
            "invoice_count": 0,
            "collected_total": "30.00",
            "refunded_total": "0.00",
            "disputed_total": "0.00",
            "collected_net_total": "30.00",
        }
    ]
    assert body["subscriptions"] == {
        "active_at_start": 2,
        "active_at_end": 2,
        "created": 0,
        "cancelled": 0,
        "churned": 0,
        "churn_rate": "0.0000",
    }
    assert body["customers"] == {"created": 3} and body["invoices"]["created"] == 0


def test_a_period_without_subscribers_at_its_start_has_no_churn_rate(world):
    body = summary(world["owner"], **JANUARY)
    assert body["subscriptions"] == {
        "active_at_start": 0,
        "active_at_end": 3,
        "created": 3,
        "cancelled": 0,
        "churned": 0,
        "churn_rate": None,
    }
    assert body["revenue"] == [] and body["invoices"]["created"] == 0


def test_an_empty_period_gives_zeros_and_null_rates(world):
    body = summary(world["owner"], start_time="2020-01-01T00:00:00Z", end_time="2020-02-01T00:00:00Z")
    assert body["revenue"] == []
    assert body["invoices"]["created"] == 0 and body["invoices"]["finalized"] == 0
    assert set(body["invoices"]["by_status"].values()) == {0}
    assert set(body["invoices"]["by_payment_status"].values()) == {0}
    assert body["payments"] == {"succeeded": 0, "failed": 0, "success_rate": None}
    assert body["subscriptions"]["churn_rate"] is None and body["subscriptions"]["active_at_end"] == 0
    assert body["customers"] == {"created": 0}


def test_another_tenant_sees_only_its_own_figures(world):
    mine = summary(world["neighbour"], **FEBRUARY)
    assert mine["revenue"] == [
        {
            "currency": "usd",
            "invoiced_total": "99.00",
            "paid_total": "0.00",
            "outstanding_total": "99.00",
            "invoice_count": 1,
            "collected_total": "0.00",
            "refunded_total": "0.00",
            "disputed_total": "0.00",
            "collected_net_total": "0.00",
        }
    ]
    assert mine["subscriptions"]["active_at_start"] == 1 and mine["invoices"]["created"] == 1
    assert summary(world["neighbour"])["payments"] == {"succeeded": 0, "failed": 0, "success_rate": None}
    nobody = summary(fresh_tenant(), **FEBRUARY)
    assert nobody["revenue"] == [] and nobody["subscriptions"]["active_at_start"] == 0


def test_partitions_are_read_page_by_page_without_gaps_or_repeats(world):
    scope = Scope(*world["owner"])
    paged = [item["id"] for item in dashboard.partition(scope, "invoice", page_size=1)]
    assert sorted(paged) == sorted(i["id"] for i in invoices(world["owner"]))
    assert len(paged) == 3
    subs = [item["id"] for item in dashboard.partition(scope, "subscription", page_size=2)]
    assert sorted(subs) == sorted(s["id"] for s in world["subs"].values())


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"start_time": "2026-03-01T00:00:00Z", "end_time": "2026-02-01T00:00:00Z"}, "query"),
        ({"start_time": "2026-02-01T00:00:00Z", "end_time": "2026-02-01T00:00:00Z"}, "query"),
        ({"start_time": "2024-01-01T00:00:00Z", "end_time": "2025-06-01T00:00:00Z"}, "query"),
        ({"start_time": "yesterday"}, "query.start_time"),
        ({"end_time": "2026-13-01T00:00:00Z"}, "query.end_time"),
        ({"currency": "dollars"}, "query.currency"),
        ({"start_time": "2999-01-01T00:00:00Z"}, "query.start_time"),
        ({"end_time": "1999-01-01T00:00:00Z", "start_time": "2001-01-01T00:00:00Z"}, "query"),
        ({"end_time": "0001-01-05T00:00:00Z"}, "query.end_time"),
        ({"start_time": "9999-12-30T00:00:00Z"}, "query.start_time"),
        ({"start_time": "0001-01-01T00:00:00+01:00"}, "query.start_time"),
    ],
)
def test_a_bad_period_or_currency_is_a_400_with_the_error_envelope(tenant, query, field):
    res = call("GET", "/api/v1/dashboard/summary", tenant=tenant, query=query)
    assert res.status == 400, res.text
    assert res.body["code"] == "validation_error" and res.body["http_status_code"] == 400
    assert res.body["details"]["errors"][0]["field"] == field
