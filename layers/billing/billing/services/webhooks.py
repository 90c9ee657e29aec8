"""Stripe webhooks: signed intake, and the record that makes processing once-only and auditable.

Intake (``accept``): the raw body is verified against the environment's active Stripe connection's webhook secret with
Stripe's scheme (``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``, several ``v1`` allowed, compared
in constant time), with the timestamp within the tolerance in BOTH directions (Stripe's SDK checks only the past). A
valid event is queued as ``{tenant_id, environment_id, stripe_event_id, type, payload}`` and nothing else happens on
this path: the only storage/KMS read is the webhook secret on a cache miss. Kept light on purpose (no Stripe SDK, no
pydantic): it is imported on the intake's cold start.

Processing (``process``): one item per Stripe event, ``PK=<tenant>#<env>#webhook``, ``SK=<stripe event id>``: type,
outcome, source (webhook | reconciliation), received/processed times, attempts and ``expires_at`` (epoch seconds, the
table's TTL attribute). It is written as ``processed`` only after the event's effect, so a crash between the two only
repeats an idempotent effect; a later delivery of a processed event is counted as a duplicate and changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from billing import jsontext, stripe_edge, wiring
from billing.observability import logger, metrics
from billing.scope import Scope
from billing.settings import get_settings
from billing.store.dynamo import ConditionFailed
from billing.timeutil import iso, utcnow

SIGNATURE_HEADER = "stripe-signature"
MAX_SIGNATURE_HEADER = 2048
MAX_SIGNATURES = 8
NEGATIVE_CACHE_SECONDS = 30
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_EVENT_ID = re.compile(r"^evt_[A-Za-z0-9_]{1,250}$")

# The index of Stripe connections that reconciliation walks (one Query, never a Scan):
# ``PK=webhooks#stripe_connections``, ``SK=<tenant>#<env>#<connection id>``.
CONNECTIONS_INDEX_PK = "webhooks#stripe_connections"
# How long a delivery holds an event while applying it: above the processor's 30 s timeout, below the webhook
# queue's 180 s visibility timeout (a redelivery after a crash finds the lease expired).
CLAIM_LEASE_SECONDS = 60


class Rejected(Exception):
    """A webhook that must not be processed: ``reason`` is logged and counted, never the body or the secret."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# ---------------------------------------------------------------------------------------------- signature


def parse_signature(header: str | None) -> tuple[int, list[str]]:
    if not header or len(header) > MAX_SIGNATURE_HEADER:
        raise Rejected("missing_signature" if not header else "malformed_signature")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise Rejected("malformed_signature")
        if key == "t":
            if timestamp is not None or not value.isdigit() or len(value) > 12:
                raise Rejected("malformed_signature")
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures or len(signatures) > MAX_SIGNATURES:
        raise Rejected("malformed_signature")
    return timestamp, signatures


def verify(body: bytes, header: str | None, secret: str, now: float, tolerance: int) -> None:
    """Raise ``Rejected`` unless ``header`` signs ``body`` with ``secret`` at a time within ``tolerance`` of ``now``."""
    timestamp, signatures = parse_signature(header)
    expected = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    matched = False
    for candidate in signatures:  # every candidate is compared: the time taken does not tell which one matched
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise Rejected("signature_mismatch")
    if timestamp < now - tolerance:
        raise Rejected("timestamp_too_old")
    if timestamp > now + tolerance:
        raise Rejected("timestamp_in_future")


# ---------------------------------------------------------------------------------------------- secrets cache

_secrets: dict[tuple[str, str], tuple[float, str | None]] = {}


def _load_secret(scope: Scope) -> str | None:
    connection = stripe_edge.active_connection(scope)
    if connection is None:
        return None
    secret = stripe_edge.credentials(scope, connection).get("webhook_secret")
    return str(secret) if secret else None


def webhook_secret(scope: Scope) -> str | None:
    """The environment's webhook secret, reused for a few minutes (an unknown environment for less)."""
    key = (scope.tenant_id, scope.environment_id)
    now = time.monotonic()
    cached = _secrets.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]
    secret = _load_secret(scope)
    ttl = get_settings().webhook_secret_cache_seconds if secret else NEGATIVE_CACHE_SECONDS
    if len(_secrets) > 10_000:
        _secrets.clear()
    _secrets[key] = (now + ttl, secret)
    return secret


def forget_secrets() -> None:
    """Drop cached secrets (tests; a rotated secret is otherwise picked up when its entry expires)."""
    _secrets.clear()


# ---------------------------------------------------------------------------------------------- intake


@dataclass(frozen=True, slots=True)
class Accepted:
    stripe_event_id: str
    type: str


def raw_body(event: dict[str, Any]) -> bytes:
    """The request body exactly as sent (function URL events are payload 2.0, base64 for non-text bodies)."""
    body = event.get("body") or ""
    limit = get_settings().webhook_max_body_bytes
    if event.get("isBase64Encoded"):
        if len(body) > (limit + 2) // 3 * 4 + 4:
            raise Rejected("body_too_large", 413)
        try:
            data = base64.b64decode(body, validate=True)
        except ValueError:
            raise Rejected("malformed_body") from None
    else:
        data = body.encode()
    if len(data) > limit:
        raise Rejected("body_too_large", 413)
    return data


def accept(tenant_id: str, environment_id: str, headers: dict[str, str], body: bytes) -> Accepted:
    """Verify one delivery and queue it. Raises ``Rejected``; queues nothing unless everything checks out."""
    settings = get_settings()
    if not (_ID.match(tenant_id) and _ID.match(environment_id)):
        raise Rejected("unknown_environment")
    if len(body) > settings.webhook_max_body_bytes:
        raise Rejected("body_too_large", 413)
    header = {k.lower(): v for k, v in headers.items()}.get(SIGNATURE_HEADER)
    parse_signature(header)  # a malformed header is refused before any storage read
    scope = Scope(tenant_id, environment_id)
    secret = webhook_secret(scope)
    if secret is None:
        raise Rejected("unknown_environment")
    verify(body, header, secret, time.time(), settings.webhook_tolerance_seconds)
    try:
        payload = jsontext.loads(body, exact=False)  # forwarded as JSON again: fractions stay floats
    except jsontext.BadJson:
        raise Rejected("malformed_event") from None
    if not isinstance(payload, dict):
        raise Rejected("malformed_event")
    event_id, event_type = payload.get("id"), payload.get("type")
    if not (isinstance(event_id, str) and _EVENT_ID.match(event_id) and isinstance(event_type, str) and event_type):
        raise Rejected("malformed_event")
    message = {
        "tenant_id": tenant_id,
        "environment_id": environment_id,
        "stripe_event_id": event_id,
        "type": event_type[:200],
        "received_at": iso(utcnow()),
        "payload": payload,
    }
    if not settings.webhook_queue_url:
        raise RuntimeError("WEBHOOK_QUEUE_URL is not configured")
    wiring.client("sqs").send_message(
        QueueUrl=settings.webhook_queue_url,
        MessageBody=json.dumps(message, separators=(",", ":"), ensure_ascii=False),
    )
    return Accepted(event_id, event_type)


def reject(reason: str, tenant_id: str, environment_id: str) -> None:
    logger.warning(
        "stripe webhook rejected",
        extra={"reason": reason, "tenant_id": tenant_id[:64], "environment_id": environment_id[:64]},
    )
    metrics.add_metric(name="WebhookRejected", unit="Count", value=1)


# ---------------------------------------------------------------------------------------------- connections index


def connection_index_op(table: Any, scope: Scope, connection_id: str) -> dict[str, Any]:
    """The index item that lets reconciliation find every Stripe connection with one Query (``table``: a
    ``billing.store.dynamo.Table``). Written in the connection's create transaction."""
    return dict(
        table.put_op(
            {
                "PK": CONNECTIONS_INDEX_PK,
                "SK": f"{scope.tenant_id}#{scope.environment_id}#{connection_id}",
                "tenant_id": scope.tenant_id,
                "environment_id": scope.environment_id,
                "connection_id": connection_id,
            }
        )
    )


# ---------------------------------------------------------------------------------------------- processing record


def record_pk(scope: Scope) -> str:
    return f"{scope.prefix}#webhook"


def find_record(scope: Scope, event_id: str) -> dict[str, Any] | None:
    return wiring.entities().get(record_pk(scope), event_id)


def _expires_at() -> int:
    return int(time.time()) + get_settings().webhook_record_days * 86400


class InProgress(Exception):
    """Another delivery of the same event is being applied right now; this one is retried later (then a duplicate)."""


def _claim(table: Any, pk: str, event_id: str, received: str) -> bool:
    """Take the event for this invocation, or learn that it was applied already (False).

    One conditional write decides between concurrent deliveries of the same event: the first takes a lease of
    ``CLAIM_LEASE_SECONDS`` (longer than the processor's timeout, shorter than the queue's visibility timeout), the
    others are told to come back later. A failed attempt, or a lease whose holder died, can be taken again.
    """
    now = int(time.time())
    try:
        table.update(
            pk,
            event_id,
            "SET #s = :processing, lease_until = :lease, expires_at = if_not_exists(expires_at, :e), "
            "received_at = if_not_exists(received_at, :r)",
            condition="attribute_not_exists(#s) OR #s = :failed OR (#s = :processing AND lease_until < :now)",
            names={"#s": "status"},
            values={
                ":processing": "processing",
                ":failed": "failed",
                ":lease": now + CLAIM_LEASE_SECONDS,
                ":now": now,
                ":e": _expires_at(),
                ":r": received,
            },
        )
        return True
    except ConditionFailed:
        current = table.get(pk, event_id) or {}
        if current.get("status") == "processed":
            return False
        metrics.add_metric(name="WebhookInProgress", unit="Count", value=1)
        raise InProgress(f"stripe event {event_id} is being applied by another delivery") from None


def process(scope: Scope, event: dict[str, Any], *, source: str, received_at: str | None = None) -> str:
    """Apply one Stripe event once. Returns the outcome; raises (after recording the failure) to be retried."""
    from billing.services import webhook_effects  # deferred: the intake never imports the effects

    event_id, event_type = str(event["id"]), str(event["type"])
    table = wiring.entities()
    pk = record_pk(scope)
    received = received_at or iso(utcnow())
    if not _claim(table, pk, event_id, received):
        table.update(pk, event_id, "ADD duplicates :one", values={":one": 1})
        metrics.add_metric(name="WebhookDuplicate", unit="Count", value=1)
        return "duplicate"
    effect = webhook_effects.DISPATCH.get(event_type)
    try:
        outcome = effect(scope, event) if effect else "ignored_unknown_type"
    except Exception as exc:
        table.update(
            pk,
            event_id,
            "SET #s = :failed, event_type = :t, outcome = :o, #src = :src, expires_at = :e, "
            "received_at = if_not_exists(received_at, :r), failed_at = :now ADD attempts :one",
            names={"#s": "status", "#src": "source"},
            values={
                ":failed": "failed",
                ":t": event_type,
                ":o": f"error:{type(exc).__name__}",
                ":src": source,
                ":e": _expires_at(),
                ":r": received,
                ":now": iso(utcnow()),
                ":one": 1,
            },
        )
        metrics.add_metric(name="WebhookFailed", unit="Count", value=1)
        logger.warning(
            "stripe event not applied; it will be retried",
            extra={"stripe_event_id": event_id, "type": event_type, "error": type(exc).__name__, "detail": str(exc)},
        )
        raise
    table.update(
        pk,
        event_id,
        "SET #s = :processed, event_type = :t, outcome = :o, #src = :src, expires_at = :e, "
        "received_at = if_not_exists(received_at, :r), processed_at = :now, created = :c ADD attempts :one",
        names={"#s": "status", "#src": "source"},
        values={
            ":processed": "processed",
            ":t": event_type,
            ":o": outcome,
            ":src": source,
            ":e": _expires_at(),
            ":r": received,
            ":now": iso(utcnow()),
            ":c": int(event.get("created") or 0),
            ":one": 1,
        },
    )
    metrics.add_metric(name="WebhookProcessed", unit="Count", value=1)
    logger.info("stripe event applied", extra={"stripe_event_id": event_id, "type": event_type, "outcome": outcome})
    return outcome


def handle_message(body: dict[str, Any]) -> None:
    """One message of the webhook queue (``functions/webhooks_stripe_processor``)."""
    from billing.schemas.webhooks import WebhookMessage

    message = WebhookMessage.model_validate(body)
    scope = Scope(message.tenant_id, message.environment_id)
    process(scope, message.payload, source="webhook", received_at=message.received_at)
