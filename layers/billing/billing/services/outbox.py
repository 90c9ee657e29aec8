"""The outbox hook of every write that outbound webhooks report: one call per write point, returning the ops
to add to that write's own transaction (docs/webhooks-out.md).

    ops.extend(outbox.invoice_change(scope, before, after))
    repo.create(scope, record, extra_ops=[outbox.event(scope, CUSTOMER_CREATED, "customer", record)])

Nothing is sent from here: the message exists if and only if the transaction committed; the outbox table's stream
hands it to the relay.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from billing.domain import webhooks_out as rules
from billing.scope import Scope
from billing.settings import get_settings
from billing.store import outbox as store
from billing.store.entities import strip_keys
from billing.timeutil import iso, utcnow


def message(
    scope: Scope, event_type: str, kind: str, entity: Mapping[str, Any], *, now: datetime | None = None
) -> dict[str, Any]:
    at = now or utcnow()
    return {
        "id": store.new_message_id(),
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "event_type": event_type,
        "kind": kind,
        "entity": strip_keys(entity),
        "created_at": iso(at),
        "expires_at": int((at + timedelta(days=get_settings().webhook_message_days)).timestamp()),
    }


def event(scope: Scope, event_type: str, kind: str, entity: Mapping[str, Any]) -> dict[str, Any]:
    """The op writing one message about ``entity`` (as it is written by the same transaction)."""
    return store.message_op(scope, message(scope, event_type, kind, entity))


def invoice_change(scope: Scope, before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ops of the invoice events a write from ``before`` to ``after`` implies (none for most writes)."""
    return [event(scope, name, "invoice", after) for name in rules.invoice_events(before, after)]


def payment_change(scope: Scope, before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ops of ``payment.success`` / ``payment.failed`` when a payment reaches that status."""
    return [event(scope, name, "payment", after) for name in rules.payment_events(before, after)]


def subscription_change(
    scope: Scope, before: Mapping[str, Any] | None, after: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The ops of ``subscription.created`` / ``.cancelled`` / ``.updated`` a write implies."""
    return [event(scope, name, "subscription", after) for name in rules.subscription_events(before, after)]
