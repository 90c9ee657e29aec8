"""Outbound webhook endpoints of an environment: register, change, disable, delete; deliveries, replays, test-send.

A new endpoint gets a signing secret (``whsec_`` + 24 random bytes, base64) that the create answer shows once; it is
stored encrypted with the template's KMS key (bound to the tenant, environment and endpoint) and never shown again.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from billing.domain import webhooks_out as rules
from billing.errors import InvalidOperation, NotFound, ValidationFailed
from billing.ids import new_id
from billing.observability import metrics
from billing.outbound import TargetRefused, check_url
from billing.schemas.webhook_endpoints import EndpointCreate, EndpointFilter, EndpointUpdate, Replay
from billing.scope import Scope
from billing.services import outbox, webhook_delivery
from billing.settings import get_settings
from billing.store import outbox as store
from billing.store import secrets
from billing.store.entities import ACTIVE
from billing.timeutil import iso, utcnow

MAX_REPLAY = 1000


def _check(url: str) -> None:
    try:
        check_url(url, allow_private=get_settings().webhook_allow_private_targets)
    except TargetRefused as exc:
        raise ValidationFailed(
            f"invalid request: url: {exc}", {"errors": [{"field": "url", "message": str(exc)}]}
        ) from None


def _room_for_one(scope: Scope) -> None:
    if len(webhook_delivery.all_endpoints(scope)) >= webhook_delivery.MAX_ENDPOINTS:
        raise InvalidOperation(
            f"an environment has at most {webhook_delivery.MAX_ENDPOINTS} webhook endpoints; delete one first",
            {"limit": webhook_delivery.MAX_ENDPOINTS},
        )


def create(scope: Scope, request: EndpointCreate, actor: str = "api") -> tuple[dict[str, Any], str]:
    """The new endpoint and its signing secret (shown once)."""
    _check(request.url)
    _room_for_one(scope)
    endpoint_id = new_id("webhook_endpoint")
    secret = rules.secret_text(os.urandom(rules.SECRET_BYTES))
    now = iso(utcnow())
    record: dict[str, Any] = {
        "id": endpoint_id,
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "url": request.url,
        "description": request.description,
        "event_types": request.event_types or [],
        "enabled": request.enabled,
        "metadata": request.metadata or {},
        "secret_ciphertext": secrets.encrypt(scope, endpoint_id, {"secret": secret}),
        "secret_hint": f"{secret[:6]}…{secret[-4:]}",
        "status": ACTIVE,
        "created_at": now,
        "updated_at": now,
        "created_by": actor,
        "updated_by": actor,
        "version": 1,
    }
    created = store.endpoints().create(scope, record)
    metrics.add_metric(name="WebhookEndpointCreated", unit="Count", value=1)
    return created, secret


def get(scope: Scope, endpoint_id: str) -> dict[str, Any]:
    return store.endpoints().get(scope, endpoint_id)


def search(scope: Scope, criteria: EndpointFilter) -> list[dict[str, Any]]:
    return criteria.arrange([r for r in store.endpoints().list(scope) if criteria.keep(r)])


def update(scope: Scope, endpoint_id: str, request: EndpointUpdate, actor: str = "api") -> dict[str, Any]:
    current = get(scope, endpoint_id)
    changes = request.model_dump(exclude_unset=True, exclude_none=True)
    if "url" in changes:
        _check(changes["url"])
    record = {
        **current,
        **changes,
        "updated_at": iso(utcnow()),
        "updated_by": actor,
        "version": int(current["version"]) + 1,
    }
    return store.endpoints().replace(scope, record, int(current["version"]))


def delete(scope: Scope, endpoint_id: str) -> None:
    """Remove the endpoint (its pending deliveries are skipped; its delivery log stays until it expires)."""
    get(scope, endpoint_id)
    repo = store.endpoints()
    repo.table.transact([repo.table.delete_op(f"{scope.prefix}#webhook_endpoint", endpoint_id)])


def deliveries(scope: Scope, endpoint_id: str, limit: int) -> list[dict[str, Any]]:
    get(scope, endpoint_id)
    return store.deliveries(scope, endpoint_id, limit)


def replay(scope: Scope, endpoint_id: str, request: Replay, now: datetime) -> list[str]:
    """Deliver one message, or every message of a time range this endpoint takes, again (same ``webhook-id``)."""
    endpoint = get(scope, endpoint_id)
    window = request.window()
    if window is None:
        found = store.get_message(scope, str(request.message_id))
        if found is None:
            raise NotFound(f"message {request.message_id} not found (messages are kept for a limited time)")
        messages = [found]
    else:
        messages = store.messages_between(scope, window[0], window[1], MAX_REPLAY + 1)
        if len(messages) > MAX_REPLAY:
            raise InvalidOperation(
                f"the range holds more than {MAX_REPLAY} messages; replay a shorter range", {"limit": MAX_REPLAY}
            )
        types = endpoint.get("event_types") or []
        messages = [
            m for m in messages if m.get("target_endpoint_id") is None and rules.subscribed(types, str(m["event_type"]))
        ]
    for message in messages:
        webhook_delivery.restart(scope, endpoint_id, message, now)
    metrics.add_metric(name="WebhookReplayed", unit="Count", value=len(messages))
    return [str(m["id"]) for m in messages]


def send_test(scope: Scope, endpoint_id: str, now: datetime) -> str:
    """Put a ``webhook.test`` message for this endpoint alone in the outbox; the relay delivers it like any other."""
    endpoint = get(scope, endpoint_id)
    if not endpoint.get("enabled"):
        raise InvalidOperation(f"webhook endpoint {endpoint_id} is disabled", {"id": endpoint_id})
    message = outbox.message(scope, rules.TEST_EVENT, "test", {"endpoint_id": endpoint_id, "sent_at": iso(now)})
    message["target_endpoint_id"] = endpoint_id
    store.table().transact([store.message_op(scope, message)])
    return str(message["id"])
