"""Saving a card on a Stripe-hosted page, and the customer's saved cards.

``setup_intent`` creates a Stripe Checkout Session in setup mode for the customer's Stripe customer (synced first if
needed) and returns its hosted ``checkout_url``. Whether the saved card becomes the default travels in the session's
and the setup intent's metadata (``flexprice_set_default``), so the webhook that confirms the card can apply it.
No card number ever reaches this service: Stripe's page collects it; we only read brand, last4 and expiry.

Stripe is reached through this environment's Stripe (``stripe_edge``): any Stripe failure answers a 4xx carrying
Stripe's code and message (402 card error, 400 invalid request or rejected key) or a 503 with ``Retry-After``, never a
500. Metadata is checked against Stripe's limits before anything is sent. A linked Stripe customer that Stripe no
longer has (deleted before its ``customer.deleted`` was applied) is unlinked and replaced by a fresh one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from billing import stripe_edge
from billing.errors import InvalidOperation
from billing.ids import ulid
from billing.observability import logger, metrics
from billing.schemas.payments import SetupIntentCreate
from billing.scope import Scope
from billing.services import customers, stripe_sync
from billing.timeutil import iso


def _now() -> datetime:
    return datetime.now(UTC)


def _stripe(scope: Scope) -> tuple[Any, dict[str, Any]]:
    """Kept for callers not yet on ``stripe_edge.require``: the environment's client and connection."""
    edge = stripe_edge.require(scope)
    return edge.client, edge.connection


def _stripe_customer(scope: Scope, customer_id: str) -> str:
    """Kept for callers not yet on ``stripe_sync.stripe_customer``."""
    with stripe_edge.translated("create the customer at Stripe"):
        return stripe_sync.stripe_customer(scope, customer_id)


def setup_intent(scope: Scope, customer_id: str, request: SetupIntentCreate, request_id: str) -> dict[str, Any]:
    customer = customers.get(scope, customer_id)
    if customer.get("status") != "published":
        raise InvalidOperation(f"customer {customer_id} is archived", {"customer_id": customer_id})
    metadata = stripe_edge.metadata(
        request.metadata,
        {
            "flexprice_customer_id": customer_id,
            "flexprice_environment_id": scope.environment_id,
            "flexprice_set_default": "true" if request.set_default else "false",
            "flexprice_purpose": "save_card",
        },
    )
    edge = stripe_edge.require(scope)
    client = edge.client
    with stripe_edge.translated("start the card setup"):
        stripe_customer = stripe_sync.stripe_customer(scope, customer_id)
        try:
            session = _setup_session(client, stripe_customer, customer_id, request, request_id, metadata)
        except stripe_edge.sdk().InvalidRequestError as err:
            if not stripe_edge.missing(err, "customer"):
                raise
            stripe_customer = stripe_sync.relink(scope, customer_id, stripe_customer)
            session = _setup_session(client, stripe_customer, customer_id, request, request_id, metadata)
        intent = client.v1.setup_intents.retrieve(session.setup_intent) if session.setup_intent else None
    metrics.add_metric(name="CardSetupStarted", unit="Count", value=1)
    logger.info("card setup session created", extra={"customer_id": customer_id, "checkout_session": session.id})
    return {
        "setup_intent_id": session.setup_intent,
        "checkout_session_id": session.id,
        "checkout_url": session.url,
        "client_secret": getattr(intent, "client_secret", None),
        "status": getattr(intent, "status", None) or session.status,
        "usage": request.usage,
        "customer_id": customer_id,
        "created_at": iso(
            datetime.fromtimestamp(session.created, UTC) if getattr(session, "created", None) else _now()
        ),
        "expires_at": iso(datetime.fromtimestamp(session.expires_at, UTC)) if session.expires_at else None,
    }


def _setup_session(
    client: Any,
    stripe_customer: str,
    customer_id: str,
    request: SetupIntentCreate,
    request_id: str,
    metadata: dict[str, str],
) -> Any:
    params: dict[str, Any] = {
        "mode": "setup",
        "customer": stripe_customer,
        "payment_method_types": request.payment_method_types,
        "success_url": request.success_url,
        "cancel_url": request.cancel_url or request.success_url,
        "metadata": metadata,
        "setup_intent_data": {"metadata": metadata},
    }
    # One key per API request and Stripe customer: a retried invocation of the same request replays the same session.
    key = stripe_edge.key("checkout.setup", customer_id, request_id or ulid(), stripe_customer)
    return client.v1.checkout.sessions.create(params, stripe_edge.options(key))


def saved_methods(scope: Scope, customer_id: str) -> dict[str, Any]:
    """The customer's saved cards in Flexprice's ``SavedPaymentMethodsResponse`` shape."""
    customers.get(scope, customer_id)
    edge = stripe_edge.connect(scope)
    stripe_id = edge.customer(customer_id) if edge is not None else None
    if edge is None or stripe_id is None:
        return {"providers": [{"provider": "stripe", "items": []}]}
    client = edge.client
    with stripe_edge.translated("list the saved cards"):
        try:
            stripe_customer = client.v1.customers.retrieve(stripe_id)
        except stripe_edge.sdk().InvalidRequestError as err:
            if not stripe_edge.missing(err):
                raise
            stripe_customer = None
        if stripe_customer is None or getattr(stripe_customer, "deleted", False):
            stripe_sync.forget_deleted(scope, stripe_id, "missing at Stripe")
            return {"providers": [{"provider": "stripe", "items": []}]}
        settings = getattr(stripe_customer, "invoice_settings", None)
        default = getattr(settings, "default_payment_method", None) if settings else None
        listed = client.v1.payment_methods.list({"customer": stripe_id, "type": "card"})
    items = []
    for method in listed.data:
        card = method.card
        items.append(
            {
                "id": method.id,
                "provider": "stripe",
                "type": "card",
                "status": "active",
                "is_default": method.id == default,
                "can_auto_charge": True,
                "instantly_chargeable": True,
                "card": {
                    "brand": card.brand,
                    "last4": card.last4,
                    "exp_month": card.exp_month,
                    "exp_year": card.exp_year,
                },
            }
        )
    return {"providers": [{"provider": "stripe", "items": items}]}


def set_default(scope: Scope, customer_id: str, payment_method_id: str) -> None:
    """Make a saved card the Stripe customer's default for invoices (applied when Stripe confirms the card)."""
    edge = stripe_edge.require(scope)
    with stripe_edge.translated("make the card the default"):
        stripe_customer = stripe_sync.stripe_customer(scope, customer_id)
        edge.client.v1.customers.update(
            stripe_customer,
            {"invoice_settings": {"default_payment_method": payment_method_id}},
            stripe_edge.options(stripe_edge.key("customer.default_pm", customer_id, payment_method_id)),
        )
    metrics.add_metric(name="DefaultPaymentMethodSet", unit="Count", value=1)
