"""Webhook delivery: Stripe's signature scheme, asynchronous attempts with exponential backoff, and switches
that duplicate, reorder or drop deliveries. Times are on the emulator's clock, so advancing it fires retries."""

from __future__ import annotations

import functools
import hashlib
import heapq
import hmac
import itertools
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stripe_emulator.store import Account, Clock


def sign(payload: str, secret: str, timestamp: int) -> str:
    """`Stripe-Signature` header value: `t=<unix>,v1=<hex HMAC-SHA256 of "t.payload">`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class Scheduler:
    """Runs callables at times on the emulator clock, one at a time, on a background thread."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._running = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="stripe-emulator-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self.clock.changed:
            self._stopping = True
            self.clock.changed.notify_all()
        if self._thread:
            self._thread.join(timeout=10)

    def clear(self) -> None:
        with self.clock.changed:
            self._heap.clear()

    def at(self, due: float, fn: Callable[[], None]) -> None:
        with self.clock.changed:
            heapq.heappush(self._heap, (due, next(self._seq), fn))
            self.clock.changed.notify_all()

    def after(self, seconds: float, fn: Callable[[], None]) -> None:
        self.at(self.clock.now() + seconds, fn)

    def idle(self) -> bool:
        with self.clock.changed:
            return not self._running and not (self._heap and self._heap[0][0] <= self.clock.now())

    def pending(self) -> int:
        with self.clock.changed:
            return len(self._heap) + (1 if self._running else 0)

    def _loop(self) -> None:
        while True:
            with self.clock.changed:
                while not self._stopping:
                    if self._heap and self._heap[0][0] <= self.clock.now():
                        break
                    wait = 0.5 if not self._heap else min(0.5, self._heap[0][0] - self.clock.now())
                    self.clock.changed.wait(max(wait, 0.001))
                if self._stopping:
                    return
                _, _, fn = heapq.heappop(self._heap)
                self._running = True
            try:
                fn()
            except Exception as exc:  # a failing task must not stop the scheduler
                print(f"stripe-emulator: scheduled task failed: {exc!r}", flush=True)
            finally:
                with self.clock.changed:
                    self._running = False
                    self.clock.changed.notify_all()


@dataclass
class WebhookConfig:
    duplicate: bool = False  # deliver every event twice
    # Stripe does not guarantee delivery in the order events were generated
    # (https://docs.stripe.com/webhooks#event-ordering): by default every delivery is delayed by a seeded random
    # 0..shuffle_window seconds, so a burst of events arrives out of order. shuffle=False delivers in order.
    shuffle: bool = True
    shuffle_window: float = 0.3
    seed: int = 0  # the random delays repeat for a seed
    drop_next: int = 0  # the next N events are recorded as dropped and never delivered
    retry_base: float = 1.0  # first retry after this many seconds, doubling each time
    max_attempts: int = 6
    timeout: float = 5.0  # seconds to wait for the receiver

    def update(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if not hasattr(self, key):
                raise ValueError(f"unknown webhook setting: {key}")
            current = getattr(self, key)
            setattr(self, key, type(current)(value))


@dataclass
class Delivery:
    event_id: str
    event_type: str
    endpoint_id: str
    url: str
    secret: str
    payload: str
    account: Account
    copy: int = 1
    attempts: list[dict[str, Any]] = field(default_factory=list)
    status: str = "pending"  # pending | delivered | failed | dropped

    def record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "endpoint_id": self.endpoint_id,
            "url": self.url,
            "copy": self.copy,
            "status": self.status,
            "attempts": list(self.attempts),
        }


class Webhooks:
    def __init__(self, clock: Clock, scheduler: Scheduler, lock: threading.RLock) -> None:
        self.clock = clock
        self.scheduler = scheduler
        self.lock = lock
        self.config = WebhookConfig()
        self.deliveries: list[Delivery] = []
        self.rng = random.Random(self.config.seed)

    def reset(self) -> None:
        self.deliveries.clear()
        self.rng = random.Random(self.config.seed)

    def configure(self, values: dict[str, Any]) -> None:
        self.config.update(values)
        if "seed" in values:
            self.rng = random.Random(self.config.seed)

    def publish(self, account: Account, event: dict[str, Any]) -> int:
        """Queue the event for every enabled endpoint that wants it; returns the number of endpoints."""
        endpoints = [
            e
            for e in account.all("webhook_endpoint")
            if e["status"] == "enabled" and ("*" in e["enabled_events"] or event["type"] in e["enabled_events"])
        ]
        if not endpoints:
            return 0
        payload = json.dumps(event, indent=2)
        dropped = self.config.drop_next > 0
        if dropped:
            self.config.drop_next -= 1
        copies = 2 if self.config.duplicate else 1
        for endpoint in endpoints:
            for n in range(1, copies + 1):
                delivery = Delivery(
                    event["id"],
                    event["type"],
                    endpoint["id"],
                    endpoint["url"],
                    endpoint["_secret"],
                    payload,
                    account,
                    copy=n,
                )
                self.deliveries.append(delivery)
                if dropped:
                    delivery.status = "dropped"
                    continue
                delay = self.rng.uniform(0, self.config.shuffle_window) if self.config.shuffle else 0.0
                if n > 1:
                    delay += 0.01
                self.scheduler.after(delay, functools.partial(self._attempt, delivery))
        return 0 if dropped else len(endpoints)

    def _attempt(self, delivery: Delivery) -> None:
        timestamp = int(time.time())
        request = urllib.request.Request(  # noqa: S310 (endpoint URLs are validated as http(s) on create)
            delivery.url,
            data=delivery.payload.encode(),
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Stripe-Signature": sign(delivery.payload, delivery.secret, timestamp),
            },
        )
        status: int | None = None
        error: str | None = None
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout) as response:  # noqa: S310
                status = response.status
                response.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (OSError, TimeoutError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        ok = status is not None and 200 <= status < 300
        with self.lock:
            delivery.attempts.append({"at": int(self.clock.now()), "status": status, "error": error})
            if ok:
                delivery.status = "delivered"
                self._settle(delivery)
            elif len(delivery.attempts) >= self.config.max_attempts:
                delivery.status = "failed"
                self._settle(delivery)
            else:
                backoff = self.config.retry_base * 2 ** (len(delivery.attempts) - 1)
                self.scheduler.after(backoff, lambda: self._attempt(delivery))

    def _settle(self, delivery: Delivery) -> None:
        event = delivery.account.get(delivery.event_id)
        if event is not None and delivery.copy == 1:
            event["pending_webhooks"] = max(0, event["pending_webhooks"] - 1)
