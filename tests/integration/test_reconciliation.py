"""Reconciliation reads every Stripe event since its cursor, oldest first, and repairs each one webhooks missed.

Each test has a Stripe emulator of its own (its clock is moved forward to spread events over time, which must not
move the clock other tests see). Events are made by real requests through the official SDK; reconciliation reads
them back with the SDK over HTTP and applies them through the real webhook processing on the embedded AWS.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import stripe

from billing import wiring
from billing.scope import Scope
from billing.services import reconciliation, webhooks
from stripe_emulator.server import StripeEmulator
from tests.integration.test_webhooks import connect


@pytest.fixture
def own_stripe() -> Iterator[StripeEmulator]:
    emulator = StripeEmulator(port=0, record_requests=False)
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def stripe_key(stripe_emulator) -> str:
    return f"sk_test_{uuid.uuid4().hex}"


def make_events(emulator: StripeEmulator, key: str, count: int, *, per_second: int) -> list[str]:
    """``count`` events (``product.created``, which changes nothing here), ``per_second`` to a second of Stripe time.
    Returns their ids, oldest first."""
    client = stripe.StripeClient(key, base_addresses={"api": emulator.url}, max_network_retries=0)
    for n in range(count):
        if n and n % per_second == 0:
            emulator.advance_clock(1)
        client.v1.products.create({"name": f"p{n}"})
    events = emulator.objects(key, "event")  # newest first, as Stripe lists them
    assert len(events) == count
    return [e["id"] for e in reversed(events)]


def client_of(emulator: StripeEmulator, key: str) -> stripe.StripeClient:
    return stripe.StripeClient(key, base_addresses={"api": emulator.url}, max_network_retries=0)


def processed(scope: Scope, event_ids: list[str]) -> list[bool]:
    return [(webhooks.find_record(scope, e) or {}).get("status") == "processed" for e in event_ids]


def active_connection(tenant) -> dict:
    from billing import stripe_edge

    found = stripe_edge.active_connection(Scope(*tenant))
    assert found is not None
    return found


def test_events_since_reads_every_page_oldest_first(own_stripe, stripe_key):
    ids = make_events(own_stripe, stripe_key, 250, per_second=7)
    listed = [e["id"] for e in reconciliation.events_since(client_of(own_stripe, stripe_key), 0)]
    assert listed == ids  # every event once, in the order Stripe created them, across three pages and more


def test_events_since_reads_a_second_holding_more_than_a_page(own_stripe, stripe_key):
    # 20 older events, then 130 in what the emulator's clock sees as a handful of seconds at most
    ids = make_events(own_stripe, stripe_key, 20, per_second=5)
    own_stripe.advance_clock(5)
    ids += make_events_more(own_stripe, stripe_key, 130)
    listed = [e["id"] for e in reconciliation.events_since(client_of(own_stripe, stripe_key), 0)]
    assert sorted(listed) == sorted(ids) and len(listed) == len(set(listed)) == 150
    assert listed[:20] == ids[:20]
    created = [e["created"] for e in reconciliation.events_since(client_of(own_stripe, stripe_key), 0)]
    assert created == sorted(created)


def make_events_more(emulator: StripeEmulator, key: str, count: int) -> list[str]:
    before = {e["id"] for e in emulator.objects(key, "event")}
    client = client_of(emulator, key)
    for n in range(count):
        client.v1.products.create({"name": f"q{n}"})
    return [e["id"] for e in reversed(emulator.objects(key, "event")) if e["id"] not in before]


def mark_processed(scope: Scope, event_ids: list[str]) -> None:
    """Record events as a webhook delivery would have (25 to a BatchWriteItem, AWS's limit)."""
    table = wiring.entities()
    pk = webhooks.record_pk(scope)
    for start in range(0, len(event_ids), 25):
        requests = [
            {"PutRequest": {"Item": {"PK": {"S": pk}, "SK": {"S": e}, "status": {"S": "processed"}}}}
            for e in event_ids[start : start + 25]
        ]
        table.client.batch_write_item(RequestItems={table.name: requests})


def test_more_than_a_thousand_events_the_oldest_missed_are_repaired(tenant, own_stripe, stripe_key):
    """1,006 events since the cursor; webhooks delivered the newest 1,000 and missed the six oldest. A newest-first
    read capped at 1,000 never reaches those six and moves its cursor past them."""
    connect(tenant, stripe_key)
    scope = Scope(*tenant)
    ids = make_events(own_stripe, stripe_key, 1006, per_second=40)
    mark_processed(scope, ids[6:])
    counts = reconciliation.reconcile_environment(
        scope, active_connection(tenant), client=client_of(own_stripe, stripe_key)
    )
    assert counts == {"listed": 1006, "applied": 6, "skipped": 1000, "failed": 0, "out_of_time": 0}
    assert all(processed(scope, ids))
    newest = max(e["created"] for e in own_stripe.objects(stripe_key, "event"))
    assert reconciliation.cursor(scope) == newest
    again = reconciliation.reconcile_environment(
        scope, active_connection(tenant), client=client_of(own_stripe, stripe_key)
    )
    assert again["applied"] == 0


def test_a_run_out_of_time_moves_the_cursor_only_over_what_it_applied(tenant, own_stripe, stripe_key, monkeypatch):
    connect(tenant, stripe_key)
    scope = Scope(*tenant)
    ids = make_events(own_stripe, stripe_key, 150, per_second=10)
    created = {e["id"]: e["created"] for e in own_stripe.objects(stripe_key, "event")}

    # A clock that moves one second per look: the run has time for about 60 events, less than one page of 100.
    ticks = iter(range(10**9))
    monkeypatch.setattr(reconciliation.time, "monotonic", lambda: float(next(ticks)))
    first = reconciliation.reconcile_environment(
        scope, active_connection(tenant), deadline=60.0, client=client_of(own_stripe, stripe_key)
    )
    monkeypatch.undo()
    done = processed(scope, ids)
    assert first["out_of_time"] == 1 and 0 < first["applied"] < 150
    assert done == sorted(done, reverse=True)  # oldest first: what was applied is a prefix of the events in time order
    first_missing = ids[done.index(False)]
    assert reconciliation.cursor(scope) <= created[first_missing]  # never past an event that was not applied

    second = reconciliation.reconcile_environment(
        scope, active_connection(tenant), client=client_of(own_stripe, stripe_key)
    )
    assert second["out_of_time"] == 0 and second["failed"] == 0
    assert all(processed(scope, ids))
    assert first["applied"] + second["applied"] == 150


def test_a_failing_event_holds_the_cursor_but_not_the_events_after_it(tenant, own_stripe, stripe_key, monkeypatch):
    connect(tenant, stripe_key)
    scope = Scope(*tenant)
    ids = make_events(own_stripe, stripe_key, 30, per_second=3)
    created = {e["id"]: e["created"] for e in own_stripe.objects(stripe_key, "event")}
    poison = ids[10]

    real = webhooks.process

    def failing(scope_, event, **kw):
        if event["id"] == poison:
            raise RuntimeError("cannot apply this one yet")
        return real(scope_, event, **kw)

    monkeypatch.setattr(webhooks, "process", failing)
    counts = reconciliation.reconcile_environment(
        scope, active_connection(tenant), client=client_of(own_stripe, stripe_key)
    )
    assert counts["failed"] == 1 and counts["applied"] == 29
    assert reconciliation.cursor(scope) <= created[poison]
    monkeypatch.undo()
    again = reconciliation.reconcile_environment(
        scope, active_connection(tenant), client=client_of(own_stripe, stripe_key)
    )
    assert again["applied"] == 1 and all(processed(scope, ids))
    assert reconciliation.cursor(scope) == created[ids[-1]]
