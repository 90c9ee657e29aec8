"""Outbound webhooks against the embedded AWS: the outbox written with each change, the relay, signed deliveries
verified with the ``standardwebhooks`` package, retries through an outage, replays, the test-send, isolation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from billing import wiring
from billing.scope import Scope
from billing.settings import reset_settings
from billing.store import outbox as store
from tests.support.api import call
from tests.support.invoicing import fixed, setup, subscribe
from tests.support.webhooks_out import Pump, Receiver

RETRIES = "1,1,1,1,1"  # five retries one second apart (the deployed schedule spans 27.6 hours)


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", RETRIES)
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pump(aws_endpoint: str, aws_stack: Any, fast_retries: None) -> Pump:
    return Pump(aws_endpoint, aws_stack)


def register(tenant: tuple[str, str], url: str, **fields: Any) -> dict[str, Any]:
    res = call("POST", "/api/v1/webhooks/endpoints", tenant=tenant, body={"url": url, **fields})
    assert res.status == 201, res.text
    assert res.body["secret"].startswith("whsec_")
    return dict(res.body)


def messages(tenant: tuple[str, str]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return store.messages_between(Scope(*tenant), now - timedelta(hours=1), now + timedelta(minutes=1), 1000)


def verified(secret: str, got: Any) -> dict[str, Any]:
    """The payload, after ``standardwebhooks`` accepted the signature (it raises otherwise)."""
    payload = Webhook(secret).verify(got.body, got.headers)
    assert isinstance(payload, dict)
    return payload


# -- the outbox ------------------------------------------------------------------------------------------------


def test_each_change_writes_its_message_in_its_own_transaction(tenant):
    ctx = setup(tenant, lambda meter: [fixed("10", "ADVANCE")])
    sub = subscribe(tenant, ctx)
    duplicate = call("POST", "/api/v1/customers", tenant=tenant, body={"external_id": "acme", "name": "again"})
    assert duplicate.status == 409  # refused: no message for a write that did not happen
    found = messages(tenant)
    kinds = sorted(m["event_type"] for m in found)
    assert kinds == ["customer.created", "invoice.update.finalized", "subscription.created"], kinds
    opening = next(m for m in found if m["event_type"] == "invoice.update.finalized")["entity"]
    res = call("PUT", f"/api/v1/invoices/{opening['id']}/payment", tenant=tenant, body={"payment_status": "SUCCEEDED"})
    assert res.status == 200, res.text
    cancel = call(
        "POST", f"/api/v1/subscriptions/{sub['id']}/cancel", tenant=tenant, body={"cancellation_type": "immediate"}
    )
    assert cancel.status == 200, cancel.text
    kinds = [m["event_type"] for m in messages(tenant)]
    assert kinds.count("invoice.update.payment") == 1
    assert kinds.count("subscription.cancelled") == 1
    paid = next(m for m in messages(tenant) if m["event_type"] == "invoice.update.payment")
    assert paid["entity"]["payment_status"] == "SUCCEEDED"


# -- delivery --------------------------------------------------------------------------------------------------


def test_deliveries_are_signed_per_standard_webhooks_and_carry_flexprice_payloads(tenant, receiver, pump):
    endpoint = register(tenant, receiver.url("/hooks"))
    res = call("POST", "/api/v1/customers", tenant=tenant, body={"external_id": "c-1", "name": "One"})
    assert res.status == 201
    pump.run_until(lambda: len(receiver.got("/hooks")) >= 1)
    got = receiver.got("/hooks")[0]
    payload = verified(endpoint["secret"], got)
    assert payload["event_type"] == "customer.created"
    assert payload["customer"]["id"] == res.body["id"]
    assert payload["customer"]["external_id"] == "c-1"
    assert got.headers["webhook-id"].startswith("msg_")
    assert got.headers["webhook-signature"].startswith("v1,")
    with pytest.raises(WebhookVerificationError):  # another secret does not verify
        verified("whsec_" + "A" * 32, got)
    log = call("GET", f"/api/v1/webhooks/endpoints/{endpoint['id']}/deliveries", tenant=tenant)
    assert log.status == 200
    assert [(d["status"], d["attempts"], d["response_status"]) for d in log.body["items"]] == [("succeeded", 1, 200)]
    shown = call("GET", f"/api/v1/webhooks/endpoints/{endpoint['id']}", tenant=tenant)
    assert "secret" not in shown.body and "secret_ciphertext" not in shown.body


def test_an_outage_over_several_retries_loses_nothing_and_keeps_one_webhook_id_per_event(tenant, receiver, pump):
    # Every message is refused three times (503, 500, 503), then accepted.
    refusals = 3
    receiver.answer = lambda path, n: 200 if n >= refusals else (503 if n % 2 == 0 else 500)
    endpoint = register(tenant, receiver.url("/down"))
    for n in range(EVENTS):
        res = call("POST", "/api/v1/customers", tenant=tenant, body={"external_id": f"c-{n}", "name": f"C{n}"})
        assert res.status == 201
    written = {m["id"] for m in messages(tenant)}
    assert len(written) == EVENTS

    def all_delivered() -> bool:
        ok = {r.headers["webhook-id"] for r in receiver.got("/down") if r.answered == 200}
        return ok == written

    pump.run_until(all_delivered, timeout=90)
    requests = receiver.got("/down")
    by_id: dict[str, list[Any]] = {}
    for r in requests:
        by_id.setdefault(r.headers["webhook-id"], []).append(r)
        verified(endpoint["secret"], r)  # every attempt is signed (a fresh timestamp each time)
    assert set(by_id) == written
    for attempts in by_id.values():
        assert [a.answered for a in attempts][-1] == 200
        assert len({a.body for a in attempts}) == 1  # the same event, byte for byte
    assert sum(1 for r in requests if r.answered != 200) == refusals * EVENTS
    log = call("GET", f"/api/v1/webhooks/endpoints/{endpoint['id']}/deliveries", tenant=tenant)
    assert sorted(d["status"] for d in log.body["items"]) == ["succeeded"] * EVENTS
    assert sum(d["attempts"] for d in log.body["items"]) == len(requests)


EVENTS = 4


def test_a_failing_receiver_never_delays_another(tenant, receiver, pump):
    receiver.answer = lambda path, n: 503 if path == "/broken" else 200
    register(tenant, receiver.url("/broken"))
    register(tenant, receiver.url("/fine"))
    for n in range(3):
        assert (
            call("POST", "/api/v1/customers", tenant=tenant, body={"external_id": f"i-{n}", "name": "I"}).status == 201
        )
    pump.run_until(lambda: len(receiver.got("/fine")) == 3, timeout=30)
    # The healthy receiver got everything while the broken one was still inside its first retries.
    assert len(receiver.got("/broken")) <= 3 * 2


def test_deliveries_give_up_after_the_schedule_and_reach_the_dead_letter_queue(tenant, receiver, pump):
    receiver.answer = lambda path, n: 500
    endpoint = register(tenant, receiver.url("/gone"))
    assert call("POST", "/api/v1/customers", tenant=tenant, body={"external_id": "x", "name": "X"}).status == 201
    attempts = len(RETRIES.split(",")) + 1

    def finished() -> bool:
        log = call("GET", f"/api/v1/webhooks/endpoints/{endpoint['id']}/deliveries", tenant=tenant).body["items"]
        return bool(log) and log[0]["status"] == "failed"

    pump.run_until(finished, timeout=60)
    assert len(receiver.got("/gone")) == attempts
    dead = [d for d in pump.dead_letters() if d["endpoint_id"] == endpoint["id"]]
    assert len(dead) == 1 and dead[0]["response_status"] == 500


def test_event_type_filters_replays_and_the_test_send(tenant, receiver, pump):
    endpoint = register(tenant, receiver.url("/picky"), event_types=["customer.updated"])
    created = call("POST", "/api/v1/customers", tenant=tenant, body={"external_id": "p-1", "name": "P"}).body
    assert call("PUT", f"/api/v1/customers/{created['id']}", tenant=tenant, body={"name": "Q"}).status == 200
    pump.run_until(lambda: len(receiver.got("/picky")) == 1)
    first = receiver.got("/picky")[0]
    assert verified(endpoint["secret"], first)["event_type"] == "customer.updated"

    again = call(
        "POST",
        f"/api/v1/webhooks/endpoints/{endpoint['id']}/replay",
        tenant=tenant,
        body={"message_id": first.headers["webhook-id"]},
    )
    assert again.status == 202 and again.body["replayed"] == 1
    pump.run_until(lambda: len(receiver.got("/picky")) == 2)
    assert receiver.got("/picky")[1].headers["webhook-id"] == first.headers["webhook-id"]

    now = datetime.now(UTC)
    window = {"start_time": (now - timedelta(minutes=5)).isoformat(), "end_time": now.isoformat()}
    ranged = call("POST", f"/api/v1/webhooks/endpoints/{endpoint['id']}/replay", tenant=tenant, body=window)
    assert ranged.status == 202 and ranged.body["replayed"] == 1  # customer.created is not this endpoint's
    pump.run_until(lambda: len(receiver.got("/picky")) == 3)

    sent = call("POST", f"/api/v1/webhooks/endpoints/{endpoint['id']}/test", tenant=tenant)
    assert sent.status == 202
    pump.run_until(lambda: len(receiver.got("/picky")) == 4)
    test = receiver.got("/picky")[3]
    assert test.headers["webhook-id"] == sent.body["message_id"]
    assert verified(endpoint["secret"], test)["event_type"] == "webhook.test"


def test_disabled_and_deleted_endpoints_receive_nothing(tenant, receiver, pump):
    off = register(tenant, receiver.url("/off"), enabled=False)
    gone = register(tenant, receiver.url("/deleted"))
    assert call("DELETE", f"/api/v1/webhooks/endpoints/{gone['id']}", tenant=tenant).status == 204
    on = register(tenant, receiver.url("/on"))
    assert call("POST", "/api/v1/customers", tenant=tenant, body={"external_id": "d-1", "name": "D"}).status == 201
    pump.run_until(lambda: len(receiver.got("/on")) == 1)
    assert receiver.got("/off") == [] and receiver.got("/deleted") == []
    assert call("GET", f"/api/v1/webhooks/endpoints/{gone['id']}", tenant=tenant).status == 404
    listed = call("GET", "/api/v1/webhooks/endpoints", tenant=tenant).body["items"]
    assert {e["id"] for e in listed} == {off["id"], on["id"]}


def test_endpoint_requests_are_validated(tenant, monkeypatch):
    bad = [
        {"url": "ftp://example.com/x"},
        {"url": "https://example.com/x", "event_types": ["invoice.nonsense"]},
        {"url": "http://example.com/hooks"},  # plain http only on the local stack
    ]
    for body in bad:
        res = call("POST", "/api/v1/webhooks/endpoints", tenant=tenant, body=body)
        assert res.status == 400, (body, res.text)
        assert set(res.body) >= {"code", "message", "http_status_code", "details"}
    replay = call("POST", "/api/v1/webhooks/endpoints/ep_x/replay", tenant=tenant, body={})
    assert replay.status in (400, 404)


def test_a_refused_target_is_never_called(tenant, receiver, pump, monkeypatch):
    endpoint = register(tenant, receiver.url("/inside"))
    # A deployed stage: loopback, private and link-local addresses are refused when the delivery resolves the host.
    monkeypatch.setenv("WEBHOOK_ALLOW_PRIVATE_TARGETS", "false")
    reset_settings()
    item = wiring.entities().get(f"{tenant[0]}#{tenant[1]}#webhook_endpoint", endpoint["id"])
    assert item is not None
    wiring.entities().put({**item, "url": receiver.url("/inside").replace("http://", "https://")})
    assert call("POST", "/api/v1/customers", tenant=tenant, body={"external_id": "r-1", "name": "R"}).status == 201

    def attempted() -> bool:
        log = call("GET", f"/api/v1/webhooks/endpoints/{endpoint['id']}/deliveries", tenant=tenant).body["items"]
        return bool(log) and int(log[0]["attempts"]) >= 1

    pump.run_until(attempted, timeout=30)
    log = call("GET", f"/api/v1/webhooks/endpoints/{endpoint['id']}/deliveries", tenant=tenant).body["items"]
    assert log[0]["error"].startswith("refused:") and "127.0.0.1" in log[0]["error"]
    assert receiver.got("/inside") == []
    json.dumps(log)  # the log is plain JSON
