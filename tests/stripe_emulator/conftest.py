"""Fixtures: one emulator per module (fast retries), a fresh Stripe account per test, a webhook receiver, and a
check after every test that all traffic of that test matches Stripe's OpenAPI spec."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from stripe_emulator import StripeEmulator
from tests.stripe_emulator import spec


@pytest.fixture(scope="module")
def emulator() -> Iterator[StripeEmulator]:
    emu = StripeEmulator(port=0, webhook_retry_base=0.2, webhook_max_attempts=4, webhook_timeout=2.0)
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture(autouse=True)
def spec_conformance(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every request the SDK sent and every object returned during the test is validated against the spec."""
    if "emulator" not in request.fixturenames:
        yield
        return
    emu: StripeEmulator = request.getfixturevalue("emulator")
    start = len(emu.requests)
    yield
    emu.clear_faults()
    emu.configure_webhooks(duplicate=False, shuffle=True, shuffle_window=0.3, drop_next=0, retry_base=0.2)
    entries = emu.request_log()[start:]
    errors = spec.traffic_errors(entries)
    assert not errors, "traffic deviates from Stripe's spec:\n" + "\n".join(errors[:40])


@pytest.fixture
def api_key() -> str:
    return f"sk_test_{uuid.uuid4().hex}"


@pytest.fixture
def client(emulator: StripeEmulator, api_key: str) -> stripe.StripeClient:
    return stripe.StripeClient(api_key, base_addresses={"api": emulator.url})


class Receiver:
    """A webhook endpoint on loopback that records deliveries and answers with scripted status codes."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.statuses: list[int] = []  # answers for the next requests; 200 when empty
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.arrived:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.received.append(
                        {"body": body.decode(), "signature": self.headers.get("Stripe-Signature"), "status": status}
                    )
                    receiver.arrived.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        with self.arrived:
            ok = self.arrived.wait_for(lambda: predicate(self.received), timeout=timeout)
            assert ok, f"webhooks not received in time; got {[json.loads(r['body'])['type'] for r in self.received]}"
            return list(self.received)

    def events(self, status: int | None = 200) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(r["body"]) for r in self.received if status is None or r["status"] == status]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def customer_with_card(client: stripe.StripeClient) -> Callable[[str], Any]:
    """A customer whose default payment method is the given test card token."""

    def make(token: str = "pm_card_visa") -> Any:
        customer = client.v1.customers.create(params={"email": "buyer@example.com", "name": "Buyer"})
        pm = client.v1.payment_methods.attach(token, params={"customer": customer.id})
        client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": pm.id}})
        return customer

    return make
