"""Helpers of the subscription and invoicing tests: catalog set-up through the API, usage, and the scheduler
run against the embedded SQS (find due → queue → worker), with an injected clock where the test needs one."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from billing import wiring
from billing.scope import Scope
from billing.services import invoicing
from billing.settings import reset_settings
from devstack.events import LambdaContext, sqs_event
from devstack.loader import load_handler
from tests.support import aws
from tests.support.api import call
from tests.support.metering import create_meter, ingest

FIND_DUE_APP = "functions/invoicing_find_due/app.py"
WORKER_APP = "functions/invoicing_worker/app.py"


def make_queue(endpoint: str) -> str:
    """A fresh invoice queue (per test), made the function's INVOICE_QUEUE_URL."""
    sqs = aws.aws_client("sqs", endpoint)
    url = sqs.create_queue(QueueName=f"invoice-{uuid.uuid4().hex[:10]}", Attributes={"VisibilityTimeout": "360"})
    os.environ["INVOICE_QUEUE_URL"] = url["QueueUrl"]
    reset_settings()
    return str(url["QueueUrl"])


def usd_usage(meter_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "USAGE",
        "billing_model": "FLAT_FEE",
        "amount": "0.10",
        "currency": "usd",
        "billing_period": "MONTHLY",
        "invoice_cadence": "ARREAR",
        "meter_id": meter_id,
        **fields,
    }


def fixed(amount: str, cadence: str = "ARREAR", **fields: Any) -> dict[str, Any]:
    return {
        "type": "FIXED",
        "billing_model": "FLAT_FEE",
        "amount": amount,
        "currency": "usd",
        "billing_period": "MONTHLY",
        "invoice_cadence": cadence,
        **fields,
    }


def setup(
    tenant: tuple[str, str],
    prices: Callable[[str], list[dict[str, Any]]],
    *,
    customer: str = "acme",
    event_name: str = "tokens_used",
) -> dict[str, Any]:
    """A SUM meter on ``tokens``, a plan with ``prices(meter_id)``, and a customer."""
    meter = create_meter(tenant, event_name, "SUM", "tokens")
    plan = call("POST", "/api/v1/plans", tenant=tenant, body={"name": "Pro", "prices": prices(meter["id"])})
    assert plan.status == 201, plan.text
    cust = call("POST", "/api/v1/customers", tenant=tenant, body={"external_id": customer, "name": customer})
    assert cust.status == 201, cust.text
    return {"meter": meter, "plan": plan.body, "customer": cust.body, "event_name": event_name}


def subscribe(tenant: tuple[str, str], ctx: dict[str, Any], **fields: Any) -> dict[str, Any]:
    body = {
        "customer_id": ctx["customer"]["id"],
        "plan_id": ctx["plan"]["id"],
        "currency": "usd",
        "billing_period": "MONTHLY",
        **fields,
    }
    res = call("POST", "/api/v1/subscriptions", tenant=tenant, body=body)
    assert res.status == 201, res.text
    return dict(res.body)


def use(tenant: tuple[str, str], ctx: dict[str, Any], tokens: int | str, at: str, customer: str = "acme") -> None:
    res = ingest(
        tenant,
        {
            "event_id": uuid.uuid4().hex,
            "event_name": ctx["event_name"],
            "external_customer_id": customer,
            "timestamp": at,
            "properties": {"tokens": str(tokens)},
        },
    )
    assert res.status == 202, res.text


def drain(queue_url: str, handle: Callable[[dict[str, Any]], None], tenant: tuple[str, str]) -> int:
    """Receive until the queue is empty; ``handle`` each body of ``tenant``; delete what succeeded.

    The due index is global (every tenant of the embedded AWS), so messages of other tests' tenants are dropped
    unhandled: each test sees only its own subscriptions. Returns the messages handled."""
    sqs = wiring.client("sqs")
    handled = 0
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not got:
            return handled
        for msg in got:
            body = json.loads(msg["Body"])
            if (body["tenant_id"], body["environment_id"]) == tuple(tenant):
                handle(body)
                handled += 1
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=msg["ReceiptHandle"])


def run_scheduler(queue_url: str, now: datetime, tenant: tuple[str, str]) -> int:
    """One scheduler run at ``now``: the fan-out, then the worker's unit of work for every message of ``tenant``."""
    invoicing.find_due(wiring.client("sqs"), queue_url, now)
    return drain(queue_url, lambda body: invoicing.handle_message(body, now), tenant)


def invoke_worker(queue_url: str, tenant: tuple[str, str]) -> dict[str, Any]:
    """Receive one batch and hand it to the worker function as the SQS event source mapping does (messages of
    other tenants are dropped first, see ``drain``)."""
    sqs = wiring.client("sqs")
    got = sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageSystemAttributeNames=["All"]
    ).get("Messages", [])
    seen = len(got)
    mine = []
    for msg in got:
        body = json.loads(msg["Body"])
        if (body["tenant_id"], body["environment_id"]) == tuple(tenant):
            mine.append(msg)
        else:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=msg["ReceiptHandle"])
    got = mine
    if not got:
        return {"batchItemFailures": [], "received": 0, "seen": seen}
    handler = load_handler(Path(WORKER_APP).resolve())
    try:
        result = handler(sqs_event("arn:aws:sqs:us-east-1:123456789012:invoice", got), LambdaContext("worker"))
    except Exception:
        # Every record failed: Powertools raises and Lambda retries the whole batch.
        result = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in got]}
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    for msg in got:
        if msg["MessageId"] in failed:
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=msg["ReceiptHandle"], VisibilityTimeout=0)
        else:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=msg["ReceiptHandle"])
    return {**result, "received": len(got), "seen": seen}


def invoices(tenant: tuple[str, str], **query: Any) -> list[dict[str, Any]]:
    res = call("GET", "/api/v1/invoices", tenant=tenant, query={"limit": 1000, "order": "asc", **query})
    assert res.status == 200, res.text
    return list(res.body["items"])


def scope(tenant: tuple[str, str]) -> Scope:
    return Scope(*tenant)
