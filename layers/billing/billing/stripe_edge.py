"""This environment's Stripe: the one place services reach Stripe through.

Below the services and above the client (``stripe_gateway``): it answers, for one tenant and environment, which
Stripe connection is active, its credentials, the configured client, and which Stripe customer stands for one of
our customers. Services never build a client themselves and never borrow each other's helpers to get one.

Errors: ``translated()`` turns every Stripe failure into one of our errors, so an API path never answers a bare 500:

- a card declined or needing authentication → 402 ``card_error`` with Stripe's code, decline code and message;
- a rejected, expired or under-privileged key → 400 ``stripe_authentication_failed``;
- a request Stripe refuses (invalid parameters, a missing object) → 400 ``stripe_invalid_request``;
- an idempotency key reused with other parameters → 409 ``stripe_idempotency_conflict``;
- Stripe unreachable, rate-limiting or failing (connection errors, 429, 5xx) → 503 with ``Retry-After``.

Idempotency keys (``key``) are derived from our ids; when the parameters of a create can change between retries
(a customer renamed before its sync was retried), the parameters' digest is part of the key, so a key is never
reused with different parameters. Stripe keeps keys for 24 hours: a write that may be resumed later first looks
for what it created (a stored mapping, our ids in Stripe metadata), and only creates what is missing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from billing import stripe_gateway, wiring
from billing.errors import (
    AlreadyExists,
    BillingError,
    InvalidOperation,
    ServiceUnavailable,
    ValidationFailed,
)
from billing.scope import Scope
from billing.store import secrets
from billing.store.entities import ACTIVE, Entities

PROVIDER = "stripe"
CONNECTION_UNIQUE_FIELD = "active_provider"
RETRY_AFTER_S = 2
# Stripe's metadata limits (https://docs.stripe.com/api/metadata): 50 keys, keys up to 40 characters, values up to 500.
METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_VALUE_LENGTH = 500


class StripeRejected(BillingError):
    """Stripe refused a request for a reason the caller can act on."""

    code = "stripe_invalid_request"
    http_status = 400


class StripeCardError(StripeRejected):
    code = "card_error"
    http_status = 402


class StripeAuthenticationFailed(StripeRejected):
    code = "stripe_authentication_failed"
    http_status = 400


class StripeIdempotencyConflict(AlreadyExists):
    code = "stripe_idempotency_conflict"


# ---------------------------------------------------------------------------------------------- connection


def _connections() -> Entities:
    return Entities(wiring.entities(), "connection", "connection")


def active_connection(scope: Scope, provider: str = PROVIDER) -> dict[str, Any] | None:
    """The active connection of a provider in this environment, if any (two reads by key, never a scan)."""
    repo = _connections()
    connection_id = repo.lookup_unique(scope, CONNECTION_UNIQUE_FIELD, provider)
    if connection_id is None:
        return None
    found = repo.find(scope, connection_id)
    return found if found and found.get("status") == ACTIVE else None


def credentials(scope: Scope, connection: dict[str, Any]) -> dict[str, Any]:
    """Clear secrets of a connection. Never log or return what this gives."""
    return secrets.decrypt(scope, connection["id"], connection["secret_ciphertext"])


def syncs(connection: dict[str, Any] | None, entity: str, direction: str = "outbound") -> bool:
    """Whether the connection's ``sync_config.<entity>.<direction>`` is on."""
    if connection is None:
        return False
    return bool(((connection.get("sync_config") or {}).get(entity) or {}).get(direction))


@dataclass(frozen=True)
class Stripe:
    """One environment's Stripe: its active connection and a client for its secret key."""

    scope: Scope
    connection: dict[str, Any]
    client: Any

    def customer(self, customer_id: str) -> str | None:
        """The Stripe customer linked to one of ours, if any."""
        return linked_customer(self.scope, customer_id)

    def syncs(self, entity: str, direction: str = "outbound") -> bool:
        return syncs(self.connection, entity, direction)


def connect(scope: Scope) -> Stripe | None:
    """This environment's Stripe, or None when it has no active Stripe connection."""
    connection = active_connection(scope)
    if connection is None:
        return None
    client = stripe_gateway.client_for(credentials(scope, connection)["secret_key"])
    return Stripe(scope, connection, client)


def check_key(secret_key: str) -> str:
    """Ask Stripe whether it accepts a secret key, with one authenticated read (``GET /v1/balance``); the key's mode,
    ``"test"`` or ``"live"``. A rejected key is a 400 (``stripe_authentication_failed``), Stripe unreachable a 503."""
    with translated("check the connection's secret key"):
        balance = stripe_gateway.client_for(secret_key).v1.balance.retrieve()
    return "live" if bool(getattr(balance, "livemode", False)) else "test"


def require(scope: Scope) -> Stripe:
    """This environment's Stripe; 400 telling the caller how to connect one when there is none."""
    found = connect(scope)
    if found is None:
        raise InvalidOperation(
            "no active Stripe connection in this environment: create one with POST /connections first",
            {"provider": PROVIDER},
        )
    return found


def linked_customer(scope: Scope, customer_id: str) -> str | None:
    from billing.services import mappings  # a leaf module: entity mappings, no service imports

    mapping = mappings.find(scope, "customer", customer_id, PROVIDER)
    return str(mapping["provider_entity_id"]) if mapping else None


# ---------------------------------------------------------------------------------------------- requests


def digest(params: dict[str, Any]) -> str:
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def key(operation: str, *ids: str, params: dict[str, Any] | None = None) -> str:
    """A deterministic idempotency key; with ``params``, one per distinct set of parameters."""
    base = stripe_gateway.idempotency_key(operation, *ids)
    return f"{base}:{digest(params)}" if params is not None else base


def metadata(theirs: dict[str, Any] | None, ours: dict[str, str], field: str = "metadata") -> dict[str, str]:
    """The metadata sent to Stripe: the caller's pairs plus ours, checked against Stripe's limits here (400 naming
    the offending key) instead of being refused by Stripe half-way through a request."""
    given = {str(k): v for k, v in (theirs or {}).items()}
    clashes = sorted(k for k in given if k in ours)
    if clashes:
        raise ValidationFailed(
            f"{field} keys {', '.join(clashes)} are reserved", {"field": field, "reserved_keys": clashes}
        )
    merged = {**given, **ours}
    if len(merged) > METADATA_MAX_KEYS:
        room = METADATA_MAX_KEYS - len(ours)
        raise ValidationFailed(
            f"{field} can have at most {room} keys here (Stripe allows {METADATA_MAX_KEYS}, {len(ours)} are ours)",
            {"field": field, "max_keys": room},
        )
    for name, value in merged.items():
        if not name or len(name) > METADATA_MAX_KEY_LENGTH:
            raise ValidationFailed(
                f"{field} keys must have 1 to {METADATA_MAX_KEY_LENGTH} characters (Stripe's limit): {name[:60]!r}",
                {"field": f"{field}.{name[:60]}", "max_key_length": METADATA_MAX_KEY_LENGTH},
            )
        if not isinstance(value, str) or len(value) > METADATA_MAX_VALUE_LENGTH:
            raise ValidationFailed(
                f"{field} values must be strings of at most {METADATA_MAX_VALUE_LENGTH} characters (Stripe's limit): "
                f"{name!r}",
                {"field": f"{field}.{name}", "max_value_length": METADATA_MAX_VALUE_LENGTH},
            )
    return merged


def missing(err: Exception, param: str | None = None) -> bool:
    """Whether a Stripe error says an object does not exist (``resource_missing``), optionally for ``param``."""
    error = getattr(err, "error", None)
    if getattr(error, "code", None) != "resource_missing":
        return False
    return param is None or getattr(error, "param", None) in (param, None)


def options(idempotency_key: str) -> dict[str, Any]:
    return stripe_gateway.options(idempotency_key)


def sdk() -> Any:
    return stripe_gateway.sdk()


def _details(err: Any) -> dict[str, Any]:
    error = getattr(err, "error", None)
    details: dict[str, Any] = {"provider": PROVIDER}
    for name in ("code", "decline_code", "param", "type"):
        value = getattr(error, name, None) if error is not None else None
        if value:
            details[f"stripe_{name}"] = value
    status = getattr(err, "http_status", None)
    if status:
        details["stripe_http_status"] = status
    return details


def translate(err: Exception, action: str) -> BillingError:
    """One of our errors for a Stripe failure while doing ``action`` (e.g. "create the checkout session")."""
    stripe = sdk()
    message = getattr(err, "user_message", None) or str(getattr(getattr(err, "error", None), "message", "") or err)
    details = _details(err)
    if isinstance(err, stripe.CardError):
        return StripeCardError(f"Stripe declined to {action}: {message}", details)
    if isinstance(err, (stripe.AuthenticationError, stripe.PermissionError)):
        return StripeAuthenticationFailed(
            f"Stripe rejected this environment's secret key while trying to {action}: {message}; "
            "update the connection's keys (PUT /connections/{id})",
            details,
        )
    if isinstance(err, stripe.RateLimitError):
        return ServiceUnavailable(
            f"Stripe is rate-limiting requests; retry shortly ({action})", {**details, "retry_after": RETRY_AFTER_S}
        )
    if isinstance(err, stripe.IdempotencyError):
        return StripeIdempotencyConflict(f"Stripe refused a retried request to {action}: {message}", details)
    if isinstance(err, stripe.InvalidRequestError):
        status = int(getattr(err, "http_status", 400) or 400)
        if status == 429:
            return ServiceUnavailable(
                f"Stripe is rate-limiting requests; retry shortly ({action})", {**details, "retry_after": RETRY_AFTER_S}
            )
        return StripeRejected(f"Stripe refused to {action}: {message}", details)
    return ServiceUnavailable(
        f"Stripe could not be reached to {action}; retry shortly", {**details, "retry_after": RETRY_AFTER_S}
    )


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Run Stripe calls, turning any Stripe failure into one of our errors (never a bare 500)."""
    stripe = sdk()
    try:
        yield
    except stripe.StripeError as err:
        raise translate(err, action) from None
