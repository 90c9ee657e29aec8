"""Scheduled cancellation, and its race with the period-end invoice: every period is billed once, none is skipped,
and the last one ends at the scheduled date."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from billing.errors import VersionConflict
from billing.schemas.subscriptions import SubscriptionCancel
from billing.scope import Scope
from billing.services import invoicing, subscriptions
from billing.store import invoices as keys
from billing.timeutil import parse_iso
from tests.support.api import call
from tests.support.invoicing import fixed, setup, subscribe


def z(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def cycle_periods(tenant: tuple[str, str], sub_id: str) -> list[tuple[str, str]]:
    found = call("GET", "/api/v1/invoices", tenant=tenant, query={"subscription_id": sub_id, "limit": 100}).body
    return sorted(
        (i["period_start"], i["period_end"]) for i in found["items"] if i["billing_reason"] == "SUBSCRIPTION_CYCLE"
    )


def test_a_scheduled_cancellation_inside_the_current_period_cuts_it(tenant):
    ctx = setup(tenant, lambda meter: [fixed("30")])
    now = datetime.now(UTC).replace(microsecond=0)
    sub = subscribe(tenant, ctx, start_date=z(now - timedelta(days=2)))
    cut = now + timedelta(days=3)
    res = call(
        "POST",
        f"/api/v1/subscriptions/{sub['id']}/cancel",
        tenant=tenant,
        body={"cancellation_type": "scheduled_date", "cancel_at": z(cut)},
    )
    assert res.status == 200, res.text
    assert res.body["effective_date"] == z(cut)
    stored = call("GET", f"/api/v1/subscriptions/{sub['id']}", tenant=tenant).body
    assert stored["current_period_end"] == z(cut) and stored["subscription_status"] == "active"
    assert invoicing.process(Scope(*tenant), sub["id"], cut + timedelta(hours=2))
    assert cycle_periods(tenant, sub["id"]) == [(sub["current_period_start"], z(cut))]
    ended = call("GET", f"/api/v1/subscriptions/{sub['id']}", tenant=tenant).body
    assert ended["subscription_status"] == "cancelled"
    for when in (now - timedelta(minutes=1), parse_iso(sub["current_period_start"]) - timedelta(days=1)):
        refused = call(
            "POST",
            f"/api/v1/subscriptions/{sub['id']}/cancel",
            tenant=tenant,
            body={"cancellation_type": "scheduled_date", "cancel_at": z(when)},
        )
        assert refused.status == 400


@pytest.mark.parametrize("round_", range(4))
def test_a_scheduled_cancellation_racing_the_period_end_invoice_bills_each_period_once(tenant, round_):
    """The current period has ended; its invoice and a cancellation scheduled inside the next period run at once."""
    ctx = setup(tenant, lambda meter: [fixed("30")])
    now = datetime.now(UTC).replace(microsecond=0)
    sub = subscribe(tenant, ctx, start_date=z(now - timedelta(days=40)))  # monthly: period 0 ended ~10 days ago
    scope = Scope(*tenant)
    first_end = parse_iso(sub["current_period_end"])
    cut = now + timedelta(days=5)
    request = SubscriptionCancel(cancellation_type="scheduled_date", cancel_at=cut)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def invoice() -> None:
        barrier.wait()
        try:
            invoicing.process(scope, sub["id"], now)
        except BaseException as exc:
            errors.append(exc)

    def cancel() -> None:
        barrier.wait()
        for _ in range(20):  # a client retrying a 409
            try:
                subscriptions.cancel(scope, sub["id"], request, now)
                return
            except VersionConflict:
                continue
        errors.append(AssertionError("the cancellation never applied"))

    threads = [threading.Thread(target=invoice), threading.Thread(target=cancel)]
    if round_ % 2:
        threads.reverse()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    invoicing.process(scope, sub["id"], now)  # the scheduler's next run, whoever won
    current = keys.subscriptions().get(scope, sub["id"])
    assert parse_iso(current["current_period_start"]) == first_end
    assert current["current_period_end"] == z(cut) and current["last_period"] is True
    invoicing.process(scope, sub["id"], cut + timedelta(hours=2))
    periods = cycle_periods(tenant, sub["id"])
    assert periods == [(sub["current_period_start"], z(first_end)), (z(first_end), z(cut))]
    assert keys.subscriptions().get(scope, sub["id"])["subscription_status"] == "cancelled"
