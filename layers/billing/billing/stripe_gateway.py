"""The Stripe edge: one configured ``StripeClient`` per secret key, deterministic idempotency keys.

- API version pinned to ``STRIPE_API_VERSION`` (the object schemas the code and the local emulator are written
  against).
- Short HTTP timeouts and the SDK's own retries on 429, 5xx and connection errors, so that one call's worst case
  (``worst_case_seconds()``) fits the timeout of every function that calls Stripe (a template test checks it);
  every retry reuses the request's idempotency key, so a retried call never creates a second object.
- ``STRIPE_API_BASE`` (settings) points the client at the local Stripe emulator; unset, it talks to Stripe.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

from billing.settings import get_settings

STRIPE_API_VERSION = "2020-08-27"
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 5.0
MAX_NETWORK_RETRIES = 2
# The SDK waits min(0.5 * 2**(n-1), 5) seconds (with jitter, never less than 0.5) before retry n.
_SDK_INITIAL_DELAY_S = 0.5
_SDK_MAX_DELAY_S = 5.0


def worst_case_seconds() -> float:
    """The longest one Stripe call can take: every try timing out, every wait at its maximum."""
    waits = sum(min(_SDK_INITIAL_DELAY_S * float(2**i), _SDK_MAX_DELAY_S) for i in range(MAX_NETWORK_RETRIES))
    return (1 + MAX_NETWORK_RETRIES) * (CONNECT_TIMEOUT_S + READ_TIMEOUT_S) + waits


def idempotency_key(operation: str, *ids: str) -> str:
    """A key derived only from our ids: the same logical operation always sends the same key."""
    return f"billing:{operation}:" + ":".join(ids)


@lru_cache(maxsize=32)
def _client(secret_key_digest: str, secret_key: str, api_base: str | None) -> Any:
    import stripe  # deferred: ~250 ms of import that only Stripe-calling paths should pay

    addresses: dict[str, str] = {}
    if api_base:
        addresses = {"api": api_base, "connect": api_base, "files": api_base}
    return stripe.StripeClient(
        secret_key,
        stripe_version=STRIPE_API_VERSION,
        base_addresses=addresses,  # type: ignore[arg-type]
        max_network_retries=MAX_NETWORK_RETRIES,
        http_client=stripe.RequestsClient(timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)),
    )


def client_for(secret_key: str) -> Any:
    """A client for one connection's secret key, reused while the execution environment is warm."""
    digest = hashlib.sha256(secret_key.encode()).hexdigest()
    return _client(digest, secret_key, get_settings().stripe_api_base)


def sdk() -> Any:
    """The stripe module, for its error classes (``sdk().CardError``); imported only on paths that call Stripe."""
    import stripe

    return stripe


def options(key: str) -> dict[str, Any]:
    return {"idempotency_key": key}
