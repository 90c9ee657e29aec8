"""The seven phases of the Stripe workflow, end to end, against the local stack (started if not running).

    make demo            # or: .venv/bin/python tools/demo.py

Each phase prints its ids and amounts. Every run uses a fresh tenant (so it can run again against the same stack)
and a fresh Stripe emulator account. Exits non-zero as soon as a phase does not produce what it should.

Phases: Stripe connection with invoice sync → metered feature and a plan with prices → customer, synced to Stripe →
card saved on the hosted checkout page (4242) → subscription that started one period ago → single and bulk usage,
usage query → scheduler run → invoice finalized and synced → Stripe charges the card → webhook → invoice SUCCEEDED.
Then a customer whose card declines ends FAILED, and a ``send_invoice`` customer shows its hosted invoice URL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "layers" / "billing"), str(ROOT)]

HOST = "127.0.0.1"
TIMEOUT = 30


class PhaseFailed(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise PhaseFailed(message)


def say(text: str) -> None:
    print(text, flush=True)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Stack:
    """The local stack's endpoints; starts ``python -m devstack`` when nothing answers on the API port."""

    def __init__(self) -> None:
        self.api_port = int(os.environ.get("LOCAL_API_PORT") or 3000)
        self.url_port = int(os.environ.get("LOCAL_FUNCTION_URL_PORT") or 3001)
        self.aws_port = int(os.environ.get("LOCAL_AWS_PORT") or 5000)
        self.stripe_port = int(os.environ.get("LOCAL_STRIPE_PORT") or 12111)
        self.api = f"http://{HOST}:{self.api_port}"
        self.urls = f"http://{HOST}:{self.url_port}"
        self.aws = f"http://{HOST}:{self.aws_port}"
        self.stripe = f"http://{HOST}:{self.stripe_port}"
        self.process: subprocess.Popen[bytes] | None = None

    def running(self) -> bool:
        try:
            return requests.get(f"{self.api}/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def ensure(self) -> None:
        if self.running():
            say(f"Using the local stack at {self.api}")
            return
        ready = Path(tempfile.mkdtemp(prefix="demo-")) / "ready.json"
        log = ready.with_name("stack.log")
        say(f"Starting the local stack (log: {log})")
        env = {
            **os.environ,
            "PYTHONPATH": f"{ROOT / 'layers' / 'billing'}{os.pathsep}{ROOT}",
            "LOCAL_ACCESS_LOG": os.environ.get("LOCAL_ACCESS_LOG", "off"),
        }
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "devstack", "--ready-file", str(ready)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 90
        while not ready.exists():
            check(self.process.poll() is None, f"the local stack exited:\n{log.read_text(errors='replace')[-3000:]}")
            check(time.monotonic() < deadline, "the local stack did not start within 90 s")
            time.sleep(0.1)
        info = json.loads(ready.read_text())
        self.stripe = info.get("stripe_url") or self.stripe

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def drain(self) -> None:
        res = requests.post(f"{self.api}/_local/queues/drain?timeout=60", timeout=90)
        check(res.status_code == 200, f"queues did not drain: {res.text}")

    def wait_webhooks(self) -> None:
        requests.post(f"{self.stripe}/_emulator/webhooks/wait", json={"timeout": 20}, timeout=30)

    def run_schedule(self, function: str) -> dict[str, Any]:
        listed = requests.get(f"{self.api}/_local/schedules", timeout=10).json()["schedules"]
        names = [s["name"] for s in listed if (s.get("target") or {}).get("function") == function]
        check(bool(names), f"no schedule targets {function}")
        res = requests.post(f"{self.api}/_local/schedules/{names[0]}/run", timeout=120)
        check(res.status_code == 200, f"schedule {names[0]} failed: {res.text}")
        return dict(res.json())


class Api:
    def __init__(self, base: str, key: str) -> None:
        self.base = f"{base}/api/v1"
        self.session = requests.Session()
        self.session.headers.update({"x-api-key": key, "content-type": "application/json"})

    def call(self, method: str, path: str, expect: int, body: Any = None, **query: Any) -> Any:
        res = self.session.request(method, f"{self.base}{path}", json=body, params=query or None, timeout=TIMEOUT)
        check(res.status_code == expect, f"{method} {path} answered {res.status_code}, expected {expect}: {res.text}")
        return res.json() if res.text else None


def new_tenant(stack: Stack) -> tuple[str, str, str]:
    """A fresh tenant, environment and API key in the local stack's table (the key is shown only here)."""
    import boto3

    from billing.services import apikeys
    from billing.store.dynamo import Table

    client = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        endpoint_url=stack.aws,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # the embedded AWS accepts any credentials
    )
    table = Table(client, "EntitiesTable")
    tenant = apikeys.create_tenant(table, f"Demo {datetime.now(UTC):%H:%M:%S}")
    env = apikeys.create_environment(table, tenant["id"], "production")
    _record, key = apikeys.create_key(table, tenant["id"], env["id"], "demo")
    return tenant["id"], env["id"], key


def wait_for(what: str, probe: Any, stack: Stack, seconds: float = 45) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        stack.wait_webhooks()
        stack.drain()
        value = probe()
        if value:
            return value
        check(time.monotonic() < deadline, f"timed out waiting for {what}")
        time.sleep(0.5)


def run() -> int:
    import stripe

    stack = Stack()
    stack.ensure()
    try:
        tenant, environment, key = new_tenant(stack)
        api = Api(stack.api, key)
        say(f"Tenant {tenant} / environment {environment}")

        # 1. Stripe connection with invoice sync --------------------------------------------------------------
        stripe_key = f"sk_test_demo{uuid.uuid4().hex}"
        emulator = stripe.StripeClient(stripe_key, base_addresses={"api": stack.stripe})
        endpoint = emulator.v1.webhook_endpoints.create(
            {"url": f"{stack.urls}/webhooks/stripe/{tenant}/{environment}", "enabled_events": ["*"]}
        )
        connection = api.call(
            "POST",
            "/connections",
            201,
            {
                "name": "Stripe (emulator)",
                "provider_type": "stripe",
                "encrypted_secret_data": {
                    "secret_key": stripe_key,
                    "publishable_key": "pk_test_demo",
                    "webhook_secret": endpoint.secret,
                },
                "sync_config": {"customer": {"outbound": True}, "invoice": {"outbound": True}},
            },
        )
        check(stripe_key not in json.dumps(connection), "the connection echoed its secret key")
        say(f"1. Stripe connection {connection['id']} (invoice sync on), webhook endpoint {endpoint.id}")

        # 2. Catalog --------------------------------------------------------------------------------------------
        feature = api.call(
            "POST",
            "/features",
            201,
            {
                "name": "LLM tokens",
                "type": "metered",
                "meter": {
                    "name": "LLM tokens",
                    "event_name": "llm_tokens",
                    "aggregation": {"type": "SUM", "field": "tokens"},
                    "reset_usage": "BILLING_PERIOD",
                },
            },
        )
        meter_id = feature["meter_id"]
        plan = api.call(
            "POST",
            "/plans",
            201,
            {
                "name": "Growth",
                "prices": [
                    {
                        "type": "FIXED",
                        "billing_model": "FLAT_FEE",
                        "amount": "20.00",
                        "currency": "usd",
                        "billing_period": "MONTHLY",
                        "invoice_cadence": "ARREAR",
                    },
                    {
                        "type": "USAGE",
                        "billing_model": "TIERED",
                        "tier_mode": "SLAB",
                        "tiers": [{"up_to": 10000, "unit_amount": "0.002"}, {"up_to": None, "unit_amount": "0.001"}],
                        "currency": "usd",
                        "billing_period": "MONTHLY",
                        "invoice_cadence": "ARREAR",
                        "meter_id": meter_id,
                    },
                ],
            },
        )
        say(f"2. Feature {feature['id']} (meter {meter_id}), plan {plan['id']} with {len(plan['prices'])} prices")

        # 3. Customers, synced; cards saved on the hosted page ------------------------------------------------------
        start = datetime.now(UTC) - timedelta(days=31, hours=3)
        customers = {}
        for label, card, method in (
            ("paying", "4242424242424242", "charge_automatically"),
            ("declining", "4000000000000002", "charge_automatically"),
            ("invoiced", None, "send_invoice"),
        ):
            external = f"{label}-{uuid.uuid4().hex[:6]}"
            customer = api.call("POST", "/customers", 201, {"external_id": external, "name": f"{label.title()} Inc"})
            stack.drain()
            links = api.call("GET", "/integrations/mappings", 200, entity_type="customer", entity_id=customer["id"])
            check(len(links["items"]) == 1, f"customer {customer['id']} was not synced to Stripe")
            stripe_customer = links["items"][0]["provider_entity_id"]
            line = f"3. Customer {customer['id']} ({external}) → Stripe {stripe_customer}"
            if card:
                setup = api.call(
                    "POST",
                    f"/payments/customers/{customer['id']}/setup/intent",
                    201,
                    {"success_url": "https://example.com/saved", "set_default": True},
                )
                done = requests.post(
                    f"{stack.stripe}/_emulator/checkout/sessions/{setup['checkout_session_id']}/complete",
                    json={"card": card},
                    timeout=TIMEOUT,
                )
                check(done.status_code == 200, f"checkout did not complete: {done.text}")

                def default_card(customer_id: str = customer["id"]) -> Any:
                    methods = api.call("GET", f"/payments/customers/{customer_id}/methods", 200)
                    items = methods["providers"][0]["items"]
                    return next((m for m in items if m["is_default"]), None)

                saved = wait_for("the saved card to become the default", default_card, stack)
                line += f"; card {saved['card']['brand']} ••••{saved['card']['last4']} saved as default"
                line += f" via {setup['checkout_url']}"
            say(line)

            # 4. Subscription that started one period ago ---------------------------------------------------------
            subscription = api.call(
                "POST",
                "/subscriptions",
                201,
                {
                    "customer_id": customer["id"],
                    "plan_id": plan["id"],
                    "currency": "usd",
                    "billing_period": "MONTHLY",
                    "billing_cycle": "anniversary",
                    "start_date": iso(start),
                    "collection_method": method,
                },
            )
            say(
                f"4. Subscription {subscription['id']} ({method}) "
                f"{subscription['current_period_start']} → {subscription['current_period_end']}"
            )

            # 5. Usage: one event, then a bulk ---------------------------------------------------------------------
            at = start + timedelta(days=3)
            first = api.call(
                "POST",
                "/events",
                202,
                {
                    "event_name": "llm_tokens",
                    "external_customer_id": external,
                    "event_id": f"{external}-0",
                    "timestamp": iso(at),
                    "properties": {"tokens": "2500"},
                },
            )
            bulk = [
                {
                    "event_name": "llm_tokens",
                    "external_customer_id": external,
                    "event_id": f"{external}-{n}",
                    "timestamp": iso(at + timedelta(days=n)),
                    "properties": {"tokens": "1000"},
                }
                for n in range(1, 11)
            ]
            api.call("POST", "/events/bulk", 202, {"events": bulk})
            usage = api.call(
                "POST",
                "/events/usage/meter",
                200,
                {
                    "meter_id": meter_id,
                    "external_customer_id": external,
                    "start_time": subscription["current_period_start"],
                    "end_time": subscription["current_period_end"],
                },
            )
            check(usage["value"] == 12500, f"usage is {usage['value']}, expected 12500")
            say(f"5. Usage: event {first['event_id']} + bulk of {len(bulk)} → {usage['value']} tokens this period")
            customers[label] = {"customer": customer, "subscription": subscription}

        # 6. Period end: the scheduler's run, the invoice worker, the Stripe sync --------------------------------------
        result = stack.run_schedule("InvoicingFindDueFunction")
        stack.drain()
        say(f"6. Scheduler run: {json.dumps(result.get('result'))}")
        for label, entry in customers.items():
            listed = api.call("GET", "/invoices", 200, subscription_id=entry["subscription"]["id"])
            cycle = [i for i in listed["items"] if i["billing_reason"] == "SUBSCRIPTION_CYCLE"]
            check(len(cycle) == 1, f"{label}: expected one period-end invoice, found {len(cycle)}")
            invoice = cycle[0]
            check(invoice["invoice_status"] == "FINALIZED", f"{label}: invoice is {invoice['invoice_status']}")
            # 20.00 + 10,000 x 0.002 + 2,500 x 0.001 = 42.50
            check(invoice["total"] == "42.50", f"{label}: total {invoice['total']}, expected 42.50")
            links = api.call("GET", "/integrations/mappings", 200, entity_type="invoice", entity_id=invoice["id"])
            check(len(links["items"]) == 1, f"{label}: invoice {invoice['id']} was not synced to Stripe")
            entry["invoice"] = invoice
            say(
                f"   {label}: invoice {invoice['id']} {invoice['invoice_number']} total {invoice['total']} "
                f"{invoice['currency'].upper()} → Stripe {links['items'][0]['provider_entity_id']}"
            )

        # 7. Payment: Stripe collects; its webhooks come back ------------------------------------------------------
        def status_of(label: str) -> str:
            got = api.call("GET", f"/invoices/{customers[label]['invoice']['id']}", 200)
            return str(got["payment_status"])

        paid = wait_for("the paying invoice to be paid", lambda: status_of("paying") == "SUCCEEDED", stack)
        check(paid, "the paying invoice was not paid")
        final = api.call("GET", f"/invoices/{customers['paying']['invoice']['id']}", 200)
        say(
            f"7. Stripe charged the card; webhook applied: {final['id']} payment_status {final['payment_status']}, "
            f"amount_paid {final['amount_paid']}"
        )
        wait_for("the declined invoice to fail", lambda: status_of("declining") == "FAILED", stack)
        declined = api.call("GET", f"/invoices/{customers['declining']['invoice']['id']}", 200)
        say(f"   declining card: {declined['id']} payment_status {declined['payment_status']}")
        sent = api.call("GET", f"/invoices/{customers['invoiced']['invoice']['id']}", 200)
        hosted = sent.get("hosted_invoice_url")
        check(bool(hosted), "the send_invoice invoice has no hosted invoice URL")
        say(f"   send_invoice: {sent['id']} payment_status {sent['payment_status']}, hosted invoice {hosted}")
        say("All phases passed.")
        return 0
    except PhaseFailed as failed:
        say(f"FAILED: {failed}")
        return 1
    finally:
        stack.stop()


if __name__ == "__main__":
    raise SystemExit(run())
