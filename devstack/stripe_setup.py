"""The dev tenant's Stripe connection to the built-in Stripe emulator, ready to use when the local stack starts.

What a user does by hand against real Stripe (docs/webhooks.md) is done here once the stack is up:

1. a webhook endpoint on the emulator (the official ``stripe`` SDK, ``enabled_events: ["*"]``) pointing at the
   stack's webhook function URL for the dev tenant and environment;
2. ``POST /api/v1/connections`` through the stack's own HTTP API (the real authorizer and handler) with the
   emulator account's secret key and the endpoint's signing secret, customer and invoice sync on.

So a card saved on the hosted page becomes the default, and Stripe's payment events mark invoices paid, without a
manual step. Idempotent: an environment that already has an active Stripe connection is left as it is (the embedded
AWS and the emulator keep their state in memory, so each start of the stack provisions afresh).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from devstack.gateway import ApiGateway, Request

log = logging.getLogger("devstack")

SYNC_CONFIG = {"customer": {"outbound": True}, "invoice": {"outbound": True}}


@dataclass(frozen=True)
class LocalStripe:
    connection_id: str
    secret_key: str
    webhook_endpoint_id: str
    webhook_url: str


def secret_key_for(environment_id: str) -> str:
    """The emulator account of the dev environment (each secret key is its own account on the emulator)."""
    return f"sk_test_local_{environment_id.removeprefix('env_').lower()}"


def _call(gateway: ApiGateway, api_key: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"x-api-key": api_key, "content-type": "application/json", "host": "127.0.0.1"}
    data = json.dumps(body).encode() if body is not None else b""
    (status, _headers, payload), _function = gateway.handle(Request(method, path, "", headers, data))
    return status, json.loads(payload) if payload else None


def provision(
    gateway: ApiGateway,
    dev: dict[str, str],
    stripe_url: str,
    webhook_base: str,
) -> LocalStripe | None:
    """Register the webhook endpoint and create the connection; ``None`` when the environment already has one."""
    import stripe

    status, listed = _call(gateway, dev["api_key"], "GET", "/api/v1/connections")
    if status != 200:
        raise RuntimeError(f"GET /api/v1/connections answered {status}: {listed}")
    if any(c.get("provider_type") == "stripe" and c.get("connection_status") == "active" for c in listed["items"]):
        log.info("the dev environment already has a Stripe connection; left as it is")
        return None
    secret_key = secret_key_for(dev["environment_id"])
    webhook_url = f"{webhook_base}/webhooks/stripe/{dev['tenant_id']}/{dev['environment_id']}"
    client = stripe.StripeClient(secret_key, base_addresses={"api": stripe_url}, max_network_retries=2)
    endpoint = client.v1.webhook_endpoints.create(
        {"url": webhook_url, "enabled_events": ["*"], "description": "local stack (devstack)"}
    )
    status, connection = _call(
        gateway,
        dev["api_key"],
        "POST",
        "/api/v1/connections",
        {
            "name": "Stripe (local emulator)",
            "provider_type": "stripe",
            "encrypted_secret_data": {
                "secret_key": secret_key,
                "publishable_key": "pk_test_local",
                "webhook_secret": endpoint.secret,
            },
            "sync_config": SYNC_CONFIG,
        },
    )
    if status != 201:
        raise RuntimeError(f"POST /api/v1/connections answered {status}: {connection}")
    return LocalStripe(connection["id"], secret_key, endpoint.id, webhook_url)
