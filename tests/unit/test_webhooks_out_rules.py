"""Outbound webhooks, the pure rules and the edge's address checks (no AWS)."""

from __future__ import annotations

import base64
import socket
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from billing import outbound
from billing.domain import webhooks_out as rules
from billing.settings import reset_settings


def test_signatures_verify_with_the_standardwebhooks_package() -> None:
    secret = rules.secret_text(b"\x01" * rules.SECRET_BYTES)
    body = b'{"event_type":"invoice.update.finalized","invoice":{"id":"inv_1","total":"12.50"}}'
    stamp = int(__import__("time").time())
    headers = rules.headers(secret, "msg_01TEST", stamp, body)
    assert Webhook(secret).verify(body, headers) == {
        "event_type": "invoice.update.finalized",
        "invoice": {"id": "inv_1", "total": "12.50"},
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(rules.secret_text(b"\x02" * rules.SECRET_BYTES)).verify(body, headers)


def test_the_signature_is_the_specified_hmac() -> None:
    # Standard Webhooks: base64(HMAC-SHA256(key=base64decode(secret without whsec_), "id.timestamp.body")).
    import hashlib
    import hmac

    key = b"k" * 24
    expected = base64.b64encode(hmac.new(key, b"msg_1.1700000000.{}", hashlib.sha256).digest()).decode()
    assert rules.signature(rules.secret_text(key), "msg_1", 1700000000, b"{}") == "v1," + expected


def test_retries_span_more_than_a_day_in_queue_delays_of_at_most_15_minutes() -> None:
    total = sum(rules.RETRY_SCHEDULE)
    assert total >= 24 * 3600
    assert [rules.retry_delay(n) for n in range(1, len(rules.RETRY_SCHEDULE) + 2)] == [
        *rules.RETRY_SCHEDULE,
        None,
    ]
    assert rules.retry_delay(0) is None
    assert rules.queue_delay(5) == 5
    assert rules.queue_delay(36000) == 900
    assert rules.queue_delay(0.2) == 1
    assert rules.queue_delay(-3) == 0


@pytest.mark.parametrize(
    ("before", "after", "events"),
    [
        (None, {"invoice_status": "DRAFT"}, ["invoice.create.drafted"]),
        (None, {"invoice_status": "FINALIZED"}, ["invoice.update.finalized"]),
        (None, {"invoice_status": "SKIPPED"}, []),
        ({"invoice_status": "DRAFT"}, {"invoice_status": "FINALIZED"}, ["invoice.update.finalized"]),
        ({"invoice_status": "FINALIZED"}, {"invoice_status": "VOIDED"}, ["invoice.update.voided"]),
        (
            {"invoice_status": "FINALIZED", "payment_status": "PENDING", "amount_paid": 0},
            {"invoice_status": "FINALIZED", "payment_status": "SUCCEEDED", "amount_paid": 10},
            ["invoice.update.payment"],
        ),
        (
            {"invoice_status": "FINALIZED", "payment_status": "PENDING", "collector": None},
            {"invoice_status": "FINALIZED", "payment_status": "PENDING", "collector": "pay_1"},
            [],
        ),
    ],
)
def test_which_invoice_events_a_write_implies(before: Any, after: Any, events: list[str]) -> None:
    assert rules.invoice_events(before, after) == events


def test_payment_and_subscription_events() -> None:
    assert rules.payment_events(None, {"payment_status": "SUCCEEDED"}) == ["payment.success"]
    assert rules.payment_events({"payment_status": "PROCESSING"}, {"payment_status": "FAILED"}) == ["payment.failed"]
    assert rules.payment_events(None, {"payment_status": "PENDING"}) == []
    assert rules.subscription_events(None, {}) == ["subscription.created"]
    active = {"subscription_status": "active", "cancel_at_period_end": False}
    assert rules.subscription_events(active, {**active, "subscription_status": "cancelled"}) == [
        "subscription.cancelled"
    ]
    assert rules.subscription_events(active, {**active, "cancel_at_period_end": True}) == ["subscription.updated"]
    assert rules.subscription_events(active, {**active, "current_period_index": 3}) == []


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.9",
        "192.168.1.1",
        "169.254.169.254",  # the instance metadata service
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "224.0.0.1",
        "not-an-address",
    ],
)
def test_deployed_stages_refuse_private_loopback_and_link_local_addresses(address: str) -> None:
    assert not rules.address_allowed(address, allow_private=False)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert rules.address_allowed(address, allow_private=False)


def test_the_local_stack_allows_loopback() -> None:
    assert rules.address_allowed("127.0.0.1", allow_private=True)
    assert not rules.address_allowed("0.0.0.0", allow_private=True)


def _answers(*addresses: str) -> Any:
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 443)) for a in addresses]


def test_a_host_with_any_refused_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBHOOK_ALLOW_PRIVATE_TARGETS", raising=False)
    reset_settings()
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: _answers("93.184.216.34", "10.0.0.7"))
    with pytest.raises(outbound.TargetRefused, match=r"10\.0\.0\.7"):
        outbound.post("https://hooks.example.com/x", b"{}", {})


def test_the_connection_goes_to_the_address_that_was_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: a second resolution answering a private address is never made, let alone used."""
    monkeypatch.delenv("WEBHOOK_ALLOW_PRIVATE_TARGETS", raising=False)
    reset_settings()
    answers = iter([_answers("93.184.216.34"), _answers("127.0.0.1")])
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: next(answers))
    connected: list[Any] = []

    def refuse(address: Any, *args: Any, **kwargs: Any) -> Any:
        connected.append(address)
        raise ConnectionRefusedError("not in tests")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(OSError):
        outbound.post("https://hooks.example.com/x", b"{}", {})
    assert connected == [("93.184.216.34", 443)]
    assert next(answers) == _answers("127.0.0.1")  # resolved once


def test_urls_are_checked_before_they_are_stored() -> None:
    for url in ("ftp://x.example", "https://user:pw@x.example/", "https:///nohost"):
        with pytest.raises(outbound.TargetRefused):
            outbound.check_url(url, allow_private=False)
    with pytest.raises(outbound.TargetRefused):
        outbound.check_url("http://x.example/", allow_private=False)
    outbound.check_url("http://127.0.0.1:3000/_local/webhooks/receiver/a", allow_private=True)
    outbound.check_url("https://hooks.example.com/billing?x=1", allow_private=False)
