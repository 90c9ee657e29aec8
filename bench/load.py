"""Load benchmark: mixed traffic from concurrent clients against the local stack, then an exactly-once audit.

    make bench-load                                     # or: .venv/bin/python bench/load.py
    .venv/bin/python bench/load.py --seconds 30 --clients 4 --json /tmp/load.json
    .venv/bin/python bench/load.py --api-url http://127.0.0.1:3000   # a running stack (make run)

Without ``--api-url`` the local stack (``python -m devstack``) is started on free ports, as the end-to-end tier starts
it, and stopped at the end. With ``--api-url`` a running stack is used; its function URL, embedded AWS and Stripe
emulator default to the ``LOCAL_*_PORT`` ports (``--function-url``, ``--aws-url``, ``--stripe-url`` override them).

Set-up, through the API like a client (a fresh tenant each run, so it can run again against the same stack): a
tenant, environment and API key (``billing.services.apikeys`` on the stack's entities table; the key is created with
no per-key request limit unless ``--key-rate-limit`` is given), a Stripe connection to the emulator with customer and
invoice sync on and a webhook endpoint registered there, a metered feature (SUM of ``tokens``), a plan with a fixed
and a usage price, ``--customers`` customers (synced to Stripe through the sync queue) and a subscription for each.

Traffic: ``--clients`` threads, one ``requests.Session`` each, for ``--seconds``: single and bulk event ingestion,
usage by meter and by event name, event lookups, catalog reads (features, plans, prices: get and list), customer
and subscription reads, and Stripe webhooks signed with the connection's secret and POSTed to the function URL
(events about the real Stripe customers, and types the product records without acting on). Clients retry as real
ones do: events are re-sent with the same id (after their 202, concurrently with another client's send of the same
event, inside a bulk twice, and with a changed payload, which must be ignored), and webhooks are re-delivered with
the same event id. A request answered 429 is retried after its ``Retry-After``; a transport error or 5xx is
retried too (and counted).

Report: requests and throughput (requests/s, events/s), p50/p99/max latency and status codes per route, 5xx and 429
counts. Audit, after the queues are drained (``POST /_local/queues/drain``): for every customer the usage the API
reports (SUM by meter, COUNT by event name) equals exactly what the clients saw accepted, each distinct event counted
once; every accepted event is found by ``GET /events/lookup`` with its first payload and counted for the meter; every
accepted webhook has its processing record (``billing.services.webhooks.find_record``): processed once with the
outcome its type calls for, and every re-delivery counted as a duplicate; no dead-letter queue holds a message.

Exit status 1 when any request was answered 5xx (or an unexpected status, or never got an answer) or the audit fails.
Times are from this machine and the embedded AWS (slower than AWS).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
for _path in (str(ROOT / "layers" / "billing"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

TIMEOUT = 30
ATTEMPTS = 5  # per request: a client gives up after this many transport errors or 5xx answers
PATIENCE = 600  # seconds a request keeps being retried while answered 429 (it waits each Retry-After)
HOST = "127.0.0.1"
EXPECTED_STATUS = {"POST /events": 202, "POST /events/bulk": 202}  # everything else answers 200


def say(text: str = "") -> None:
    print(text, flush=True)


def iso_ms(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def retry_after(res: requests.Response) -> float:
    try:
        return min(max(float(res.headers.get("Retry-After") or 1), 0.05), 60)
    except ValueError:
        return 1.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))] if ordered else 0.0


# ---------------------------------------------------------------------------------------------- the stack


@dataclass
class Endpoints:
    api: str
    urls: str
    aws: str
    stripe: str
    tables: dict[str, str]
    log: Callable[[], str] | None = None


@dataclass
class Running:
    endpoints: Endpoints
    stop: Callable[[], None]


def start_stack() -> Running:
    """``python -m devstack`` on free ports with a ready file: the end-to-end tier's own start-up (and shutdown)."""
    from tests.e2e.conftest import _start

    steps: Iterator[Any] = _start([], {})
    local = next(steps)
    info = local.info
    endpoints = Endpoints(
        api=str(info["api_url"]),
        urls=str(info["function_url"]),
        aws=str(info["aws_endpoint"]),
        stripe=str(info["stripe_url"]),
        tables=dict(info["tables"]),
        log=local.log,
    )
    say(f"Local stack started on {endpoints.api} (log: {local.log_path})")
    return Running(endpoints, lambda: next(steps, None))


def existing_stack(args: argparse.Namespace) -> Running:
    def port(name: str, default: int) -> int:
        return int(os.environ.get(name) or default)

    endpoints = Endpoints(
        api=args.api_url.rstrip("/"),
        urls=(args.function_url or f"http://{HOST}:{port('LOCAL_FUNCTION_URL_PORT', 3001)}").rstrip("/"),
        aws=(args.aws_url or f"http://{HOST}:{port('LOCAL_AWS_PORT', 5000)}").rstrip("/"),
        stripe=(args.stripe_url or f"http://{HOST}:{port('LOCAL_STRIPE_PORT', 12111)}").rstrip("/"),
        tables={"EntitiesTable": "EntitiesTable", "EventsTable": "EventsTable"},
    )
    health = requests.get(f"{endpoints.api}/health", timeout=5)
    if health.status_code != 200:
        raise SystemExit(f"the stack at {endpoints.api} is not ready: {health.status_code} {health.text}")
    say(f"Using the local stack at {endpoints.api}")
    return Running(endpoints, lambda: None)


def drain(endpoints: Endpoints, seconds: int = 300) -> None:
    res = requests.post(f"{endpoints.api}/_local/queues/drain", params={"timeout": seconds}, timeout=seconds + 30)
    if res.status_code != 200:
        raise SystemExit(f"the queues did not drain: {res.status_code} {res.text}")


# ---------------------------------------------------------------------------------------------- set-up


@dataclass
class Setup:
    tenant: str
    environment: str
    key: str
    webhook_secret: str
    event_name: str
    feature_id: str
    meter_id: str
    plan_id: str
    price_ids: list[str]
    customers: list[dict[str, Any]]  # id, external_id, subscription_id, stripe (the Stripe customer object)
    period_start: datetime


def set_up(endpoints: Endpoints, customers: int, key_rate_limit: int) -> Setup:
    import boto3
    import stripe

    from billing.services import apikeys
    from billing.store.dynamo import Table

    run = uuid.uuid4().hex[:8]
    ddb = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=endpoints.aws,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # the embedded AWS accepts any credentials
    )
    table = Table(ddb, endpoints.tables["EntitiesTable"])
    tenant = apikeys.create_tenant(table, f"Load {run}")
    environment = apikeys.create_environment(table, tenant["id"], "production")
    _record, key = apikeys.create_key(table, tenant["id"], environment["id"], "load", rate_limit=key_rate_limit)

    session = requests.Session()
    session.headers.update({"x-api-key": key, "content-type": "application/json"})

    def api(method: str, path: str, expect: int, body: Any = None, **query: Any) -> Any:
        res = session.request(method, f"{endpoints.api}/api/v1{path}", json=body, params=query, timeout=TIMEOUT)
        if res.status_code != expect:
            raise SystemExit(f"set-up: {method} {path} answered {res.status_code}, expected {expect}: {res.text[:500]}")
        return res.json()

    secret_key = f"sk_test_load{uuid.uuid4().hex}"
    emulator = stripe.StripeClient(secret_key, base_addresses={"api": endpoints.stripe})
    hook = emulator.v1.webhook_endpoints.create(
        {"url": f"{endpoints.urls}/webhooks/stripe/{tenant['id']}/{environment['id']}", "enabled_events": ["*"]}
    )
    secrets = {"secret_key": secret_key, "publishable_key": "pk_test_load", "webhook_secret": hook.secret}
    sync = {"customer": {"outbound": True}, "invoice": {"outbound": True}}
    connection = {"name": "Stripe (emulator)", "provider_type": "stripe", "encrypted_secret_data": secrets}
    api("POST", "/connections", 201, {**connection, "sync_config": sync})

    event_name = f"load_tokens_{run}"
    aggregation = {"type": "SUM", "field": "tokens"}
    meter = {"name": f"Tokens {run}", "event_name": event_name, "aggregation": aggregation}
    feature = api("POST", "/features", 201, {"name": f"Tokens {run}", "type": "metered", "meter": meter})
    cadence = {"currency": "usd", "billing_period": "MONTHLY", "invoice_cadence": "ARREAR"}
    prices = [
        {"type": "FIXED", "billing_model": "FLAT_FEE", "amount": "10.00", **cadence},
        {"type": "USAGE", "billing_model": "FLAT_FEE", "amount": "0.001", "meter_id": feature["meter_id"], **cadence},
    ]
    plan = api("POST", "/plans", 201, {"name": f"Load {run}", "prices": prices})

    period_start = datetime.now(UTC) - timedelta(days=2)
    made: list[dict[str, Any]] = []
    for n in range(customers):
        external = f"load-{run}-{n:03d}"
        body = {"external_id": external, "name": f"Load customer {n}", "email": f"{external}@example.com"}
        customer = api("POST", "/customers", 201, body)
        subscription = api(
            "POST",
            "/subscriptions",
            201,
            {
                "customer_id": customer["id"],
                "plan_id": plan["id"],
                "currency": "usd",
                "billing_period": "MONTHLY",
                "start_date": iso(period_start),
                "collection_method": "send_invoice",
            },
        )
        made.append({"id": customer["id"], "external_id": external, "subscription_id": subscription["id"]})

    drain(endpoints)  # the customers' Stripe sync
    for customer in made:
        links = api("GET", "/integrations/mappings", 200, entity_type="customer", entity_id=customer["id"])
        if len(links["items"]) != 1:
            raise SystemExit(f"set-up: customer {customer['id']} was not synced to Stripe: {links}")
        customer["stripe"] = emulator.v1.customers.retrieve(links["items"][0]["provider_entity_id"]).to_dict()

    return Setup(
        tenant=tenant["id"],
        environment=environment["id"],
        key=key,
        webhook_secret=str(hook.secret),
        event_name=event_name,
        feature_id=feature["id"],
        meter_id=feature["meter_id"],
        plan_id=plan["id"],
        price_ids=[p["id"] for p in plan["prices"]],
        customers=made,
        period_start=period_start,
    )


# ---------------------------------------------------------------------------------------------- what clients saw


@dataclass
class Accepted:
    external_id: str
    value: Decimal
    timestamp: str


@dataclass
class Webhook:
    body: bytes
    type: str
    outcome: str
    deliveries: int = 0  # answered 200
    accepted_at: float = 0.0


@dataclass
class Ledger:
    """What the clients were told was accepted, shared by all clients."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    events: dict[str, Accepted] = field(default_factory=dict)  # the first accepted payload of each event id
    event_ids: list[str] = field(default_factory=list)
    in_flight: dict[str, dict[str, Any]] = field(default_factory=dict)  # sent, not yet answered
    unresolved: set[str] = field(default_factory=set)  # never answered 202 by anyone
    webhooks: dict[str, Webhook] = field(default_factory=dict)
    webhook_ids: list[str] = field(default_factory=list)
    sends: Counter[str] = field(default_factory=Counter)

    def sending(self, events: list[dict[str, Any]]) -> None:
        with self.lock:
            for event in events:
                self.in_flight.setdefault(event["event_id"], event)

    def settled(self, events: list[dict[str, Any]], accepted: bool) -> None:
        with self.lock:
            if accepted:
                self.sends["events in accepted requests"] += len(events)
            for event in events:
                event_id = event["event_id"]
                self.in_flight.pop(event_id, None)
                if accepted:
                    self.unresolved.discard(event_id)
                    if event_id not in self.events:
                        value = Decimal(str(event["properties"]["tokens"]))
                        self.events[event_id] = Accepted(event["external_customer_id"], value, event["timestamp"])
                        self.event_ids.append(event_id)
                elif event_id not in self.events:
                    self.unresolved.add(event_id)

    def pick_event(self, rng: random.Random) -> tuple[str, Accepted] | None:
        with self.lock:
            if not self.event_ids:
                return None
            event_id = rng.choice(self.event_ids)
            return event_id, self.events[event_id]

    def pick_in_flight(self, rng: random.Random) -> dict[str, Any] | None:
        with self.lock:
            return dict(self.in_flight[rng.choice(list(self.in_flight))]) if self.in_flight else None

    def webhook_delivered(self, event_id: str, webhook: Webhook) -> None:
        with self.lock:
            known = self.webhooks.setdefault(event_id, webhook)
            if known.deliveries == 0:
                known.accepted_at = time.monotonic()
                self.webhook_ids.append(event_id)
            known.deliveries += 1

    def pick_webhook(self, rng: random.Random) -> tuple[str, Webhook] | None:
        with self.lock:
            if not self.webhook_ids:
                return None
            event_id = rng.choice(self.webhook_ids)
            return event_id, self.webhooks[event_id]

    def count(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.sends[what] += n


@dataclass
class Recorder:
    """One client's latencies and statuses per route (merged after the run)."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, Counter[str]] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)  # 5xx, unexpected statuses, transport errors

    def add(self, route: str, ms: float, status: str) -> None:
        self.latencies.setdefault(route, []).append(ms)
        self.statuses.setdefault(route, Counter())[status] += 1

    def merge(self, other: Recorder) -> None:
        for route, values in other.latencies.items():
            self.latencies.setdefault(route, []).extend(values)
        for route, counts in other.statuses.items():
            self.statuses.setdefault(route, Counter()).update(counts)
        self.problems.extend(other.problems)


# ---------------------------------------------------------------------------------------------- clients


class Client:
    def __init__(self, number: int, setup: Setup, endpoints: Endpoints, ledger: Ledger, deadline: float) -> None:
        self.number = number
        self.setup = setup
        self.endpoints = endpoints
        self.ledger = ledger
        self.deadline = deadline
        self.rng = random.Random(number)
        self.session = requests.Session()
        self.session.headers.update({"x-api-key": setup.key, "content-type": "application/json"})
        self.recorder = Recorder()
        self.sequence = 0
        self.base = f"{endpoints.api}/api/v1"
        self.hook_url = f"{endpoints.urls}/webhooks/stripe/{setup.tenant}/{setup.environment}"
        self.operations: list[tuple[Callable[[], None], int]] = [
            (self.ingest_one, 20),
            (self.resend_one, 4),
            (self.resend_in_flight, 2),
            (self.resend_changed, 1),
            (self.ingest_bulk, 8),
            (self.usage_by_meter, 6),
            (self.usage_by_name, 3),
            (self.lookup, 4),
            (self.catalog_read, 12),
            (self.customer_read, 8),
            (self.webhook, 7),
            (self.redeliver_webhook, 1),
        ]
        self.weights = [w for _, w in self.operations]

    # -- plumbing

    def call(
        self, route: str, method: str, url: str, *, body: Any = None, data: bytes | None = None, **kwargs: Any
    ) -> requests.Response | None:
        """One request with a client's retries: after a transport error, a 5xx or a 429 (``Retry-After``)."""
        payload = data if data is not None else (json.dumps(body).encode() if body is not None else None)
        expect = EXPECTED_STATUS.get(route, 200)
        attempt, give_up = 0, time.monotonic() + PATIENCE
        while attempt < ATTEMPTS:
            attempt += 1
            started = time.perf_counter()
            try:
                res = self.session.request(method, url, data=payload, timeout=TIMEOUT, **kwargs)
            except requests.RequestException as err:
                self.recorder.add(route, (time.perf_counter() - started) * 1000, "error")
                self.problem(route, method, url, payload, None, repr(err))
                time.sleep(0.2 * attempt)
                continue
            self.recorder.add(route, (time.perf_counter() - started) * 1000, str(res.status_code))
            if res.status_code == expect:
                return res
            if res.status_code == 429 and time.monotonic() < give_up:
                attempt -= 1  # throttled, not failed: wait as asked and try again
                time.sleep(retry_after(res))
                continue
            self.problem(route, method, url, payload, res, None)
            if res.status_code >= 500:
                time.sleep(0.2 * attempt)
                continue
            return None
        return None

    def problem(
        self, route: str, method: str, url: str, payload: bytes | None, res: requests.Response | None, error: Any
    ) -> None:
        self.recorder.problems.append(
            {
                "route": route,
                "request": f"{method} {url}",
                "request_body": (payload or b"")[:600].decode(errors="replace"),
                "status": res.status_code if res is not None else None,
                "response": res.text[:600] if res is not None else error,
                "request_id": res.headers.get("apigw-requestid") if res is not None else None,
                "at": iso_ms(datetime.now(UTC)),
            }
        )

    def customer(self) -> dict[str, Any]:
        return self.rng.choice(self.setup.customers)

    def new_event(self) -> dict[str, Any]:
        self.sequence += 1
        value = Decimal(self.rng.randint(1, 2_000_000)) / 1000  # up to three decimals, exact
        at = datetime.now(UTC) - timedelta(seconds=self.rng.uniform(0, 36 * 3600))
        return {
            "event_name": self.setup.event_name,
            "external_customer_id": self.customer()["external_id"],
            "event_id": f"load-{self.number}-{self.sequence}-{uuid.uuid4().hex[:6]}",
            "timestamp": iso_ms(at),
            # as Flexprice's SDK sends them (strings) or as JSON numbers; both are parsed as Decimal
            "properties": {"tokens": str(value) if self.rng.random() < 0.5 else float(value), "client": self.number},
        }

    def send_events(self, route: str, events: list[dict[str, Any]], body: Any) -> None:
        self.ledger.sending(events)
        url = f"{self.base}/events" if route == "POST /events" else f"{self.base}/events/bulk"
        res = self.call(route, "POST", url, body=body)
        self.ledger.settled(events, accepted=res is not None)

    # -- operations

    def ingest_one(self) -> None:
        event = self.new_event()
        self.ledger.count("events sent")
        self.send_events("POST /events", [event], event)

    def _resend(self, event_id: str, accepted: Accepted, tokens: Any) -> dict[str, Any]:
        return {
            "event_name": self.setup.event_name,
            "external_customer_id": accepted.external_id,
            "event_id": event_id,
            "timestamp": accepted.timestamp,
            "properties": {"tokens": tokens, "client": self.number},
        }

    def resend_one(self) -> None:
        """A client retry after the 202 was lost: same id, same payload."""
        picked = self.ledger.pick_event(self.rng)
        if picked is None:
            return self.ingest_one()
        event = self._resend(picked[0], picked[1], str(picked[1].value))
        self.ledger.count("re-sent (same payload)")
        self.send_events("POST /events", [event], event)

    def resend_in_flight(self) -> None:
        """The same event as one another client has sent and not yet been answered for: concurrent duplicates."""
        event = self.ledger.pick_in_flight(self.rng)
        if event is None:
            return self.ingest_one()
        self.ledger.count("re-sent while in flight")
        self.send_events("POST /events", [event], event)

    def resend_changed(self) -> None:
        """Same id, another value: accepted and ignored (the first write wins)."""
        picked = self.ledger.pick_event(self.rng)
        if picked is None:
            return self.ingest_one()
        event = self._resend(picked[0], picked[1], str(picked[1].value + 1000))
        self.ledger.count("re-sent (changed payload)")
        # never recorded as accepted: the original payload is what must be stored
        if self.call("POST /events", "POST", f"{self.base}/events", body=event):
            self.ledger.count("events in accepted requests")

    def ingest_bulk(self) -> None:
        size = self.rng.randint(5, 40)
        fresh = [self.new_event() for _ in range(size)]
        events = list(fresh)
        for _ in range(self.rng.randint(0, 3)):  # retries of accepted events ride along
            picked = self.ledger.pick_event(self.rng)
            if picked is not None:
                events.append(self._resend(picked[0], picked[1], str(picked[1].value)))
        if self.rng.random() < 0.3:
            events.append(dict(fresh[0]))  # the same event twice in one bulk
        self.rng.shuffle(events)
        self.ledger.count("events sent", len(fresh))
        self.ledger.count("re-sent inside bulks", len(events) - len(fresh))
        self.send_events("POST /events/bulk", events, {"events": events})

    def _range(self) -> dict[str, str]:
        return {"start_time": iso(self.setup.period_start), "end_time": iso(datetime.now(UTC) + timedelta(hours=1))}

    def usage_by_meter(self) -> None:
        body = {
            "meter_id": self.setup.meter_id,
            "external_customer_id": self.customer()["external_id"],
            **self._range(),
        }
        if self.rng.random() < 0.3:
            body["window_size"] = "HOUR"
        self.call("POST /events/usage/meter", "POST", f"{self.base}/events/usage/meter", body=body)

    def usage_by_name(self) -> None:
        body = {
            "event_name": self.setup.event_name,
            "aggregation_type": self.rng.choice(["COUNT", "SUM"]),
            "property_name": "tokens",
            "customer_id": self.customer()["id"],
            **self._range(),
        }
        self.call("POST /events/usage", "POST", f"{self.base}/events/usage", body=body)

    def lookup(self) -> None:
        picked = self.ledger.pick_event(self.rng)
        if picked is not None:
            self.call("GET /events/lookup", "GET", f"{self.base}/events/lookup", params={"id": picked[0]})

    def catalog_read(self) -> None:
        setup = self.setup
        kind, ident = self.rng.choice(
            [("features", setup.feature_id), ("plans", setup.plan_id), ("prices", self.rng.choice(setup.price_ids))]
        )
        if self.rng.random() < 0.5:
            self.call(f"GET /{kind}/{{id}}", "GET", f"{self.base}/{kind}/{ident}")
        else:
            self.call(f"GET /{kind}", "GET", f"{self.base}/{kind}", params={"limit": 20})

    def customer_read(self) -> None:
        customer = self.customer()
        choice = self.rng.random()
        if choice < 0.4:
            self.call("GET /customers/{id}", "GET", f"{self.base}/customers/{customer['id']}")
        elif choice < 0.6:
            self.call(
                "GET /customers/external/{id}", "GET", f"{self.base}/customers/external/{customer['external_id']}"
            )
        elif choice < 0.8:
            self.call("GET /customers", "GET", f"{self.base}/customers", params={"limit": 20})
        else:
            self.call("GET /subscriptions/{id}", "GET", f"{self.base}/subscriptions/{customer['subscription_id']}")

    def _stripe_event(self) -> tuple[str, Webhook]:
        event_id = f"evt_load{uuid.uuid4().hex[:20]}"
        customer = self.customer()
        kind = self.rng.random()
        if kind < 0.4:  # a real Stripe customer; inbound customer sync is off, so it is recorded only
            event_type, outcome = "customer.updated", "inbound_off"
            obj: dict[str, Any] = {**customer["stripe"], "description": f"seen by client {self.number}"}
        elif kind < 0.6:  # a Stripe subscription that names none of ours
            event_type, outcome = "customer.subscription.updated", "recorded"
            obj = {"id": f"sub_load{uuid.uuid4().hex[:14]}", "object": "subscription", "status": "active"}
            obj["customer"] = customer["stripe"]["id"]
        elif kind < 0.75:  # a Checkout session of another integration
            event_type, outcome = "checkout.session.completed", "not_ours"
            obj = {"id": f"cs_load{uuid.uuid4().hex[:14]}", "object": "checkout.session", "mode": "payment"}
        elif kind < 0.85:  # an invoice Stripe sent on its own, not one of ours
            event_type, outcome = "invoice.paid", "not_ours"
            obj = {"id": f"in_load{uuid.uuid4().hex[:14]}", "object": "invoice", "amount_paid": 1200}
            obj["customer"] = customer["stripe"]["id"]
        else:  # a type the product does not act on
            event_type, outcome = "balance.available", "ignored_unknown_type"
            obj = {"object": "balance", "available": [{"amount": 1000, "currency": "usd"}]}
        event = {
            "id": event_id,
            "object": "event",
            "api_version": "2020-08-27",
            "created": int(time.time()),
            "type": event_type,
            "livemode": False,
            "pending_webhooks": 1,
            "data": {"object": obj},
        }
        return event_id, Webhook(json.dumps(event).encode(), event_type, outcome)

    def deliver(self, event_id: str, hook: Webhook) -> None:
        t = int(time.time())
        signature = hmac.new(self.setup.webhook_secret.encode(), f"{t}.".encode() + hook.body, hashlib.sha256)
        headers = {
            "content-type": "application/json; charset=utf-8",
            "stripe-signature": f"t={t},v1={signature.hexdigest()}",
        }
        if self.call("POST /webhooks/stripe (function URL)", "POST", self.hook_url, data=hook.body, headers=headers):
            self.ledger.webhook_delivered(event_id, hook)

    def webhook(self) -> None:
        self.ledger.count("webhooks sent")
        self.deliver(*self._stripe_event())

    def redeliver_webhook(self) -> None:
        """Stripe delivers at least once: the same event (same id and body), signed again."""
        picked = self.ledger.pick_webhook(self.rng)
        if picked is None:
            return self.webhook()
        self.ledger.count("webhooks re-delivered")
        self.deliver(*picked)

    def run(self) -> Recorder:
        while time.monotonic() < self.deadline:
            operation = self.rng.choices(self.operations, weights=self.weights)[0][0]
            operation()
        return self.recorder


# ---------------------------------------------------------------------------------------------- audit


@dataclass
class Audit:
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def fail(self, text: str) -> None:
        self.failures.append(text)


def audit(endpoints: Endpoints, setup: Setup, ledger: Ledger, clients: int) -> Audit:
    out = Audit()
    api = requests.Session()
    api.headers.update({"x-api-key": setup.key, "content-type": "application/json"})
    api.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=max(clients, 10)))
    base = f"{endpoints.api}/api/v1"
    window = {"start_time": iso(setup.period_start), "end_time": iso(datetime.now(UTC) + timedelta(hours=1))}

    def patient(method: str, path: str, **kwargs: Any) -> requests.Response:
        give_up = time.monotonic() + PATIENCE
        while True:
            res = api.request(method, f"{base}{path}", timeout=TIMEOUT, **kwargs)
            if res.status_code != 429 or time.monotonic() > give_up:
                return res
            time.sleep(retry_after(res))

    def post(path: str, body: dict[str, Any]) -> Any:
        res = patient("POST", path, json=body)
        if res.status_code != 200:
            out.fail(f"POST {path} {body} answered {res.status_code}: {res.text[:300]}")
            return None
        return json.loads(res.text, parse_float=Decimal, parse_int=Decimal)

    # 1. usage per customer, from the counters, against what the clients were told was accepted
    exact = 0
    for customer in setup.customers:
        mine = [a for a in ledger.events.values() if a.external_id == customer["external_id"]]
        want_sum = sum((a.value for a in mine), Decimal(0))
        by_meter = post("/events/usage/meter", {"meter_id": setup.meter_id, "customer_id": customer["id"], **window})
        by_count = post(
            "/events/usage",
            {
                "event_name": setup.event_name,
                "aggregation_type": "COUNT",
                "external_customer_id": customer["external_id"],
                **window,
            },
        )
        got_sum = by_meter["value"] if by_meter else None
        got_count = by_count["value"] if by_count else None
        if got_sum == want_sum and got_count == len(mine):
            exact += 1
        else:
            out.fail(
                f"customer {customer['external_id']}: usage SUM {got_sum} (expected {want_sum}), "
                f"COUNT {got_count} (expected {len(mine)})"
            )
    out.figures["customers_exact"] = exact
    out.lines.append(
        f"usage     {exact}/{len(setup.customers)} customers exact (SUM by meter and COUNT by event name equal the "
        f"{len(ledger.events)} distinct accepted events, {sum(a.value for a in ledger.events.values())} tokens)"
    )
    if ledger.unresolved:
        out.fail(f"{len(ledger.unresolved)} events were never accepted after {ATTEMPTS} attempts")

    # 2. every accepted event by lookup: found, first payload kept, counted for the meter
    def look(item: tuple[str, Accepted]) -> str | None:
        event_id, accepted = item
        res = patient("GET", "/events/lookup", params={"id": event_id})
        if res.status_code != 200:
            return f"lookup {event_id}: {res.status_code} {res.text[:200]}"
        found = json.loads(res.text, parse_float=Decimal, parse_int=Decimal)
        event = found["event"]
        if Decimal(str(event["properties"]["tokens"])) != accepted.value:
            return f"lookup {event_id}: tokens {event['properties']['tokens']}, first accepted {accepted.value}"
        if event["external_customer_id"] != accepted.external_id or setup.meter_id not in found["counted_for_meters"]:
            return f"lookup {event_id}: {found}"
        return None

    started = time.perf_counter()
    with ThreadPoolExecutor(max(clients, 4)) as pool:
        wrong = [r for r in pool.map(look, list(ledger.events.items())) if r]
    for line in wrong[:10]:
        out.fail(line)
    if len(wrong) > 10:
        out.fail(f"... {len(wrong) - 10} more lookups failed")
    out.figures["lookups_ok"] = len(ledger.events) - len(wrong)
    out.lines.append(
        f"lookups   {len(ledger.events) - len(wrong)}/{len(ledger.events)} events found with their first payload and "
        f"counted for the meter ({time.perf_counter() - started:.1f} s)"
    )

    # 3. webhooks: the processor's own record of each accepted event
    from billing import wiring
    from billing.scope import Scope
    from billing.services import webhooks
    from billing.settings import reset_settings
    from tests.support.aws import point_environment_at

    point_environment_at(endpoints.aws, endpoints.tables)
    reset_settings()
    wiring.reset()
    scope = Scope(setup.tenant, setup.environment)
    once = redelivered = dup_ok = 0
    for event_id, hook in ledger.webhooks.items():
        record = webhooks.find_record(scope, event_id)
        if record is None:
            out.fail(f"webhook {event_id} ({hook.type}) accepted {hook.deliveries}x but has no record")
            continue
        attempts, duplicates = int(record.get("attempts", 0)), int(record.get("duplicates", 0))
        if record.get("status") != "processed" or record.get("outcome") != hook.outcome:
            out.fail(f"webhook {event_id} ({hook.type}): {record.get('status')} {record.get('outcome')}")
            continue
        once += attempts == 1
        redelivered += hook.deliveries > 1
        dup_ok += duplicates == hook.deliveries - 1
        if attempts != 1 or duplicates != hook.deliveries - 1:
            out.fail(
                f"webhook {event_id} ({hook.type}) delivered {hook.deliveries}x: applied {attempts}x, "
                f"{duplicates} duplicates counted"
            )
    total = len(ledger.webhooks)
    out.figures.update(webhooks_applied_once=once, webhooks_duplicates_ok=dup_ok)
    out.lines.append(
        f"webhooks  {once}/{total} applied exactly once with the outcome of their type; "
        f"{dup_ok}/{total} with every re-delivery counted as a duplicate ({redelivered} events re-delivered)"
    )

    # 4. nothing dead-lettered
    import boto3

    sqs = boto3.client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=endpoints.aws,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    depths: dict[str, int] = {}
    for url in sqs.list_queues().get("QueueUrls", []):
        name = url.rsplit("/", 1)[-1]
        if "dead" in name.lower() or "dlq" in name.lower():
            attrs = sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            depths[name] = sum(int(v) for v in attrs.values())
    full = {name: n for name, n in depths.items() if n}
    if full:
        out.fail(f"dead-letter queues hold messages: {full}")
    out.figures["dead_letters"] = sum(depths.values())
    out.lines.append(f"DLQs      {len(depths)} dead-letter queues, {sum(depths.values())} messages")
    return out


# ---------------------------------------------------------------------------------------------- report


ROUTE_ORDER = [
    "POST /events",
    "POST /events/bulk",
    "POST /events/usage/meter",
    "POST /events/usage",
    "GET /events/lookup",
    "GET /features/{id}",
    "GET /features",
    "GET /plans/{id}",
    "GET /plans",
    "GET /prices/{id}",
    "GET /prices",
    "GET /customers/{id}",
    "GET /customers/external/{id}",
    "GET /customers",
    "GET /subscriptions/{id}",
    "POST /webhooks/stripe (function URL)",
]


def report(
    args: argparse.Namespace, recorder: Recorder, ledger: Ledger, elapsed: float, checked: Audit, stack_log: str
) -> dict[str, Any]:
    statuses: Counter[str] = Counter()
    for counts in recorder.statuses.values():
        statuses.update(counts)
    requests_total = sum(statuses.values())
    five = sum(n for s, n in statuses.items() if s.startswith("5"))
    too_many = statuses.get("429", 0)
    errors = statuses.get("error", 0)
    unexpected = [p for p in recorder.problems if p["status"] is None or p["status"] < 500]
    submitted = ledger.sends["events in accepted requests"]  # every copy in a request answered 202
    distinct = len(ledger.events)
    routes: dict[str, Any] = {}
    for route in ROUTE_ORDER + sorted(set(recorder.latencies) - set(ROUTE_ORDER)):
        values = recorder.latencies.get(route)
        if values:
            routes[route] = {
                "count": len(values),
                "p50_ms": round(percentile(values, 50), 1),
                "p99_ms": round(percentile(values, 99), 1),
                "max_ms": round(max(values), 1),
                "statuses": dict(sorted(recorder.statuses[route].items())),
            }
    log_errors = [line for line in stack_log.splitlines() if '"level":"ERROR"' in line or "Traceback" in line]
    passed = not checked.failures and five == 0 and errors == 0 and not unexpected

    say()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    say(f"Load: {args.clients} clients for {elapsed:.1f} s (this machine: {os.cpu_count()} CPUs, load average {load})")
    say(
        f"  requests  {requests_total} ({requests_total / elapsed:.1f} req/s); events {submitted} accepted "
        f"({submitted / elapsed:.1f} events/s, re-sends included), {distinct} distinct ({distinct / elapsed:.1f}/s)"
    )
    kinds = sorted((k, n) for k, n in ledger.sends.items() if k not in ("events sent", "events in accepted requests"))
    say("  sends     " + ", ".join(f"{k} {n}" for k, n in kinds))
    say("  statuses  " + ", ".join(f"{s} x{n}" for s, n in sorted(statuses.items())))
    say(f"  5xx {five}, 429 {too_many}, transport errors {errors}, unexpected 4xx {len(unexpected) - errors}")
    say()
    width = max(len(r) for r in routes) if routes else 10
    say(f"  {'route':<{width}}  {'count':>6}  {'p50 ms':>7}  {'p99 ms':>7}  {'max ms':>7}  statuses")
    for route, row in routes.items():
        codes = " ".join(f"{s}:{n}" for s, n in row["statuses"].items())
        say(
            f"  {route:<{width}}  {row['count']:>6}  {row['p50_ms']:>7.1f}  {row['p99_ms']:>7.1f}  "
            f"{row['max_ms']:>7.1f}  {codes}"
        )
    if recorder.problems:
        say()
        say(f"Problems ({len(recorder.problems)}; first 10):")
        for p in recorder.problems[:10]:
            say(f"  {p['at']} {p['request']} -> {p['status']} {p['response']!s:.300} (request id {p['request_id']})")
            say(f"    body {p['request_body'][:300]}")
    if log_errors:
        say()
        say(f"Stack log: {len(log_errors)} error lines (first 10):")
        for line in log_errors[:10]:
            say(f"  {line[:400]}")
    say()
    say("Audit (after the queues drained):")
    for line in checked.lines:
        say(f"  {line}")
    for line in checked.failures:
        say(f"  FAILED: {line}")
    say()
    say(f"Result: {'PASS' if passed else 'FAIL'} (5xx {five}, audit {'passed' if not checked.failures else 'failed'})")
    return {
        "clients": args.clients,
        "seconds": round(elapsed, 2),
        "requests": requests_total,
        "requests_per_second": round(requests_total / elapsed, 1),
        "events_accepted": submitted,
        "events_per_second": round(submitted / elapsed, 1),
        "distinct_events_accepted": distinct,
        "sends": dict(ledger.sends),
        "statuses": dict(statuses),
        "five_xx": five,
        "too_many_requests": too_many,
        "transport_errors": errors,
        "unexpected_statuses": len(unexpected) - errors,
        "routes": routes,
        "problems": recorder.problems[:50],
        "stack_log_errors": log_errors[:50],
        "audit": {
            "passed": not checked.failures,
            "lines": checked.lines,
            "failures": checked.failures,
            **checked.figures,
        },
        "passed": passed,
    }


# ---------------------------------------------------------------------------------------------- main


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/load.py", description="Mixed load against the local stack, then an audit.")
    p.add_argument("--seconds", type=float, default=60, help="traffic duration (default 60)")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    p.add_argument("--customers", type=int, default=12, help="customers, each with a subscription (default 12)")
    p.add_argument("--key-rate-limit", type=int, default=0, help="the API key's request limit per window (0: none)")
    p.add_argument("--api-url", help="a running stack's API (default: start one on free ports)")
    p.add_argument("--function-url", help="its function URL base (default 127.0.0.1:LOCAL_FUNCTION_URL_PORT)")
    p.add_argument("--aws-url", help="its embedded AWS (default 127.0.0.1:LOCAL_AWS_PORT)")
    p.add_argument("--stripe-url", help="its Stripe emulator (default 127.0.0.1:LOCAL_STRIPE_PORT)")
    p.add_argument("--json", type=Path, help="also write the report as JSON to this file")
    args = p.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or args.customers < 1:
        p.error("--clients, --seconds and --customers must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    running = existing_stack(args) if args.api_url else start_stack()
    try:
        endpoints = running.endpoints
        started = time.perf_counter()
        setup = set_up(endpoints, args.customers, args.key_rate_limit)
        say(
            f"Set-up in {time.perf_counter() - started:.1f} s: tenant {setup.tenant}, {len(setup.customers)} "
            f"customers synced to Stripe with subscriptions, meter {setup.meter_id} (SUM of tokens)"
        )
        ledger = Ledger()
        deadline = time.monotonic() + args.seconds
        clients = [Client(n, setup, endpoints, ledger, deadline) for n in range(args.clients)]
        say(f"Traffic: {args.clients} clients for {args.seconds:g} s ...")
        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            recorders = list(pool.map(Client.run, clients))
        elapsed = time.perf_counter() - started
        merged = Recorder()
        for one in recorders:
            merged.merge(one)
        drained = time.perf_counter()
        drain(endpoints)
        say(f"Queues drained in {time.perf_counter() - drained:.1f} s; auditing ...")
        checked = audit(endpoints, setup, ledger, args.clients)
        result = report(args, merged, ledger, elapsed, checked, endpoints.log() if endpoints.log else "")
        if args.json:
            args.json.write_text(json.dumps(result, indent=2, default=str))
        return 0 if result["passed"] else 1
    finally:
        running.stop()


if __name__ == "__main__":
    sys.exit(main())
