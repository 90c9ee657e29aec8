"""Outbound webhook delivery: the relay (outbox stream → one delivery per endpoint) and the delivery worker.

- **Relay**: each message inserted in the outbox (in the transaction of the change it reports) becomes one delivery
  record and one queue message per enabled endpoint subscribed to its event type. A replayed stream batch finds the
  records and queues the pending ones again (at least once; the worker skips what is already done).
- **Worker**: one queue message = one attempt at one (endpoint, message) delivery. The body is signed with the
  endpoint's secret (Standard Webhooks), ``webhook-id`` is the message id on every attempt and every replay. A 2xx
  ends it; anything else schedules the next attempt (``RETRY_SCHEDULE``, 27.6 hours) by sending the queue message
  again with a delay (at most 15 minutes per hop; the delivery record's ``next_attempt_at`` says when the attempt is
  due, so a message that arrives early is sent on again). After the last attempt the delivery is ``failed`` and a
  copy goes to the dead-letter queue. Each delivery is its own message and a batch's records run side by side, so
  an endpoint that fails or hangs (each attempt is bounded by ``WEBHOOK_ATTEMPT_TIMEOUT``) never holds up another.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from billing import outbound, wiring
from billing.domain import webhooks_out as rules
from billing.http import dumps
from billing.observability import logger, metrics
from billing.schemas.customers import customer_out
from billing.schemas.invoices import invoice_out
from billing.schemas.payments import payment_out
from billing.schemas.subscriptions import subscription_out
from billing.scope import Scope
from billing.settings import get_settings
from billing.store import outbox as store
from billing.store import secrets
from billing.store.attrs import deserialize_value
from billing.store.dynamo import ConditionFailed
from billing.store.entities import ACTIVE
from billing.timeutil import iso, parse_iso, utcnow

PENDING, SUCCEEDED, FAILED, SKIPPED = "pending", "succeeded", "failed", "skipped"
MAX_ENDPOINTS = 20  # per environment: the relay reads them all for every message (one Query)
DELIVERY_DAYS = 30
SEND_BATCH = 10

_RENDER = {
    "invoice": invoice_out,
    "payment": payment_out,
    "subscription": subscription_out,
    "customer": customer_out,
}


def schedule() -> Sequence[int]:
    return get_settings().webhook_retry_schedule or rules.RETRY_SCHEDULE


# -- payloads ------------------------------------------------------------------------------------------------


def _current_entity(scope: Scope, ref: Mapping[str, Any]) -> dict[str, Any]:
    """An entity too large to be copied into its message, as it is now (read when delivered)."""
    from billing.store import catalog
    from billing.store import invoices as invoice_keys

    repos = {
        "invoice": invoice_keys.invoices,
        "subscription": invoice_keys.subscriptions,
        "customer": catalog.customers,
    }
    repo = repos.get(str(ref.get("kind")))
    found = repo().find(scope, str(ref.get("id"))) if repo is not None else None
    return found or {"id": ref.get("id")}


def payload(scope: Scope, message: Mapping[str, Any]) -> dict[str, Any]:
    """Flexprice's shape: ``{"event_type": ..., "<kind>": <the entity as the API renders it>}``."""
    kind = str(message["kind"])
    entity = message.get("entity")
    if entity is None and message.get("entity_ref"):
        entity = _current_entity(scope, message["entity_ref"])
    render = _RENDER.get(kind)
    body = render(dict(entity or {})) if render is not None else dict(entity or {})
    return {"event_type": message["event_type"], kind: body}


# -- relay ---------------------------------------------------------------------------------------------------


def all_endpoints(scope: Scope) -> list[dict[str, Any]]:
    """Every endpoint of the environment: one Query of at most ``MAX_ENDPOINTS`` items (deleting removes them)."""
    pk = f"{scope.prefix}#webhook_endpoint"
    return store.endpoints().table.query(pk, limit=MAX_ENDPOINTS, consistent=True)


def enabled_endpoints(scope: Scope) -> list[dict[str, Any]]:
    return [i for i in all_endpoints(scope) if i.get("status") == ACTIVE and i.get("enabled")]


def _queue_body(scope: Scope, endpoint_id: str, message_id: str, generation: int) -> dict[str, Any]:
    return {
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "endpoint_id": endpoint_id,
        "message_id": message_id,
        "generation": generation,
    }


def _new_delivery(scope: Scope, endpoint_id: str, message: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    """Write the delivery record of a new message; the queue message to send (None when it is already done)."""
    pk, sk = store.delivery_key(scope, endpoint_id, message["id"])
    record = {
        "PK": pk,
        "SK": sk,
        "message_id": message["id"],
        "endpoint_id": endpoint_id,
        "event_type": message["event_type"],
        "status": PENDING,
        "attempts": 0,
        "generation": 1,
        "created_at": iso(now),
        "updated_at": iso(now),
        "next_attempt_at": iso(now),
        "expires_at": int((now + timedelta(days=DELIVERY_DAYS)).timestamp()),
    }
    try:
        wiring.entities().put(record, condition="attribute_not_exists(PK)")
    except ConditionFailed:
        current = store.get_delivery(scope, endpoint_id, message["id"])
        if current is None or current.get("status") != PENDING:
            return None
        return _queue_body(scope, endpoint_id, message["id"], int(current["generation"]))
    return _queue_body(scope, endpoint_id, message["id"], 1)


def restart(scope: Scope, endpoint_id: str, message: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """A replay: the delivery starts over under its next generation (same ``webhook-id``); returns it."""
    pk, sk = store.delivery_key(scope, endpoint_id, message["id"])
    item = wiring.entities().update(
        pk,
        sk,
        "SET generation = if_not_exists(generation, :zero) + :one, #s = :p, attempts = :zero, message_id = :m, "
        "endpoint_id = :e, event_type = :t, created_at = if_not_exists(created_at, :now), updated_at = :now, "
        "next_attempt_at = :now, expires_at = :exp REMOVE response_status, #err, delivered_at",
        names={"#s": "status", "#err": "error"},
        values={
            ":zero": 0,
            ":one": 1,
            ":p": PENDING,
            ":m": message["id"],
            ":e": endpoint_id,
            ":t": message["event_type"],
            ":now": iso(now),
            ":exp": int((now + timedelta(days=DELIVERY_DAYS)).timestamp()),
        },
    )
    send([_queue_body(scope, endpoint_id, message["id"], int(item["generation"]))])
    return item


def send(bodies: Sequence[Mapping[str, Any]], delay: int = 0) -> None:
    url = get_settings().webhook_delivery_queue_url
    if not url or not bodies:
        return
    sqs = wiring.client("sqs")
    for start in range(0, len(bodies), SEND_BATCH):
        entries = [
            {"Id": str(n), "MessageBody": json.dumps(body), "DelaySeconds": delay}
            for n, body in enumerate(bodies[start : start + SEND_BATCH])
        ]
        out = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        if out.get("Failed"):
            raise RuntimeError(f"{len(out['Failed'])} delivery messages were not queued")


def relay_message(message: Mapping[str, Any], now: datetime) -> int:
    """Fan one outbox message out to its endpoints. Returns how many deliveries were queued."""
    scope = Scope(str(message["tenant_id"]), str(message["environment_id"]))
    target = message.get("target_endpoint_id")
    bodies = []
    for endpoint in enabled_endpoints(scope):
        if target is not None and endpoint["id"] != target:
            continue
        if target is None and not rules.subscribed(endpoint.get("event_types") or [], str(message["event_type"])):
            continue
        body = _new_delivery(scope, endpoint["id"], message, now)
        if body is not None:
            bodies.append(body)
    send(bodies)
    return len(bodies)


def new_message(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The outbox message a DynamoDB stream record inserted (None for removals by TTL)."""
    image = (record.get("dynamodb") or {}).get("NewImage")
    if record.get("eventName") != "INSERT" or not image:
        return None
    return {k: deserialize_value(v) for k, v in image.items() if k not in ("PK", "SK")}


def relay(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """A stream batch, in order. On a failure the batch reports that record (Lambda resumes the stream there; the
    records before it were relayed, and relaying one again only re-queues what is still pending)."""
    now = utcnow()
    queued = 0
    failures: list[dict[str, str]] = []
    for record in records:
        message = new_message(record)
        if message is None:
            continue
        try:
            queued += relay_message(message, now)
        except Exception:
            logger.exception("outbox message not relayed; the stream retries it", extra={"id": message.get("id")})
            failures = [{"itemIdentifier": str((record.get("dynamodb") or {}).get("SequenceNumber"))}]
            break
    if queued:
        metrics.add_metric(name="WebhookDeliveriesQueued", unit="Count", value=queued)
    return {"batchItemFailures": failures}


# -- one attempt ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _secret(tenant_id: str, environment_id: str, endpoint_id: str, ciphertext: str) -> str:
    return str(secrets.decrypt(Scope(tenant_id, environment_id), endpoint_id, ciphertext)["secret"])


def endpoint_secret(scope: Scope, endpoint: Mapping[str, Any]) -> str:
    return _secret(scope.tenant_id, scope.environment_id, str(endpoint["id"]), str(endpoint["secret_ciphertext"]))


def _mark(scope: Scope, body: Mapping[str, Any], fields: Mapping[str, Any]) -> bool:
    """Record an attempt's outcome if the delivery is still the pending generation this message belongs to."""
    pk, sk = store.delivery_key(scope, body["endpoint_id"], body["message_id"])
    names = {"#s": "status"}
    values: dict[str, Any] = {":g": int(body["generation"]), ":pending": PENDING}
    sets = []
    for n, (key, value) in enumerate(fields.items()):
        names[f"#f{n}"] = key
        values[f":v{n}"] = value
        sets.append(f"#f{n} = :v{n}")
    try:
        wiring.entities().update(
            pk,
            sk,
            "SET " + ", ".join(sets),
            condition="generation = :g AND #s = :pending",
            names=names,
            values=values,
        )
    except ConditionFailed:
        return False  # replayed or finished meanwhile: this attempt's outcome no longer matters
    return True


def _attempt(scope: Scope, endpoint: Mapping[str, Any], message: Mapping[str, Any], now: datetime) -> tuple[bool, Any]:
    content = dumps(payload(scope, message)).encode("utf-8")
    stamp = int(now.timestamp())
    headers = rules.headers(endpoint_secret(scope, endpoint), str(message["id"]), stamp, content)
    try:
        answer = outbound.post(str(endpoint["url"]), content, headers)
    except outbound.TargetRefused as exc:
        return False, {"error": f"refused: {exc}"}
    except OSError as exc:
        return False, {"error": f"network: {exc}"[:500]}
    if rules.succeeded(answer.status):
        return True, {"response_status": answer.status}
    return False, {"response_status": answer.status, "error": answer.body[:500] or f"HTTP {answer.status}"}


def deliver(body: Mapping[str, Any], now: datetime | None = None) -> str:
    """One queue message: attempt the delivery if it is due, else pass the message on. Returns what happened."""
    at = now or utcnow()
    scope = Scope(str(body["tenant_id"]), str(body["environment_id"]))
    delivery = store.get_delivery(scope, str(body["endpoint_id"]), str(body["message_id"]))
    if delivery is None or int(delivery.get("generation") or 0) != int(body["generation"]):
        return "stale"
    if delivery.get("status") != PENDING:
        return "done"
    due = parse_iso(str(delivery.get("next_attempt_at") or iso(at)))
    if due > at + timedelta(seconds=1):
        send([body], delay=rules.queue_delay((due - at).total_seconds()))
        return "waiting"
    endpoint = store.endpoints().find(scope, str(body["endpoint_id"]))
    if endpoint is None or endpoint.get("status") != ACTIVE or not endpoint.get("enabled"):
        _mark(scope, body, {"status": SKIPPED, "updated_at": iso(at), "error": "endpoint disabled or deleted"})
        return "skipped"
    message = store.get_message(scope, str(body["message_id"]))
    if message is None:
        _mark(scope, body, {"status": FAILED, "updated_at": iso(at), "error": "message expired"})
        return "expired"
    ok, outcome = _attempt(scope, endpoint, message, at)
    attempts = int(delivery.get("attempts") or 0) + 1
    done_at = utcnow()
    if ok:
        _mark(scope, body, {"status": SUCCEEDED, "attempts": attempts, "updated_at": iso(done_at),
                            "delivered_at": iso(done_at), **outcome})  # fmt: skip
        metrics.add_metric(name="WebhookDelivered", unit="Count", value=1)
        return "delivered"
    metrics.add_metric(name="WebhookDeliveryFailed", unit="Count", value=1)
    wait = rules.retry_delay(attempts, schedule())
    if wait is None:
        _mark(scope, body, {"status": FAILED, "attempts": attempts, "updated_at": iso(done_at), **outcome})
        metrics.add_metric(name="WebhookDeliveryExhausted", unit="Count", value=1)
        _dead_letter(body, outcome)
        logger.warning("webhook delivery gave up", extra={**body, **outcome, "attempts": attempts})
        return "failed"
    following = done_at + timedelta(seconds=wait)
    fields = {"attempts": attempts, "updated_at": iso(done_at), "next_attempt_at": iso(following), **outcome}
    if _mark(scope, body, fields):
        send([body], delay=rules.queue_delay(wait))
    return "retrying"


def _dead_letter(body: Mapping[str, Any], outcome: Mapping[str, Any]) -> None:
    url = get_settings().webhook_delivery_dlq_url
    if url:
        wiring.client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps({**body, **outcome}))


def handle_batch(event: Mapping[str, Any]) -> dict[str, Any]:
    """The worker's SQS batch: every record at once (one slow receiver never holds up the others)."""
    records = list(event.get("Records") or [])

    def one(record: Mapping[str, Any]) -> str | None:
        try:
            deliver(json.loads(record["body"]))
        except Exception:
            logger.exception("webhook delivery message failed; SQS retries it", extra={"id": record["messageId"]})
            return str(record["messageId"])
        return None

    if not records:
        return {"batchItemFailures": []}
    with ThreadPoolExecutor(max_workers=min(len(records), 10)) as pool:
        failed = [f for f in pool.map(one, records) if f is not None]
    return {"batchItemFailures": [{"itemIdentifier": f} for f in failed]}
