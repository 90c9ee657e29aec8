"""What each Stripe event does here. Every effect is idempotent and moves state only forward, so duplicated, reordered
or replayed events converge to the same final state.

- Invoice payment status goes through ``invoices.update_payment`` (its transition table: a late ``payment_failed``
  never overwrites SUCCEEDED; FAILED can still become SUCCEEDED), with its optimistic version check retried here.
- An event about an object we don't know yet (a Stripe invoice carrying our id in its metadata, or one linked by an
  entity mapping, whose invoice is not found) raises ``UnknownObject``: the message is retried and, after the queue's
  maxReceiveCount, lands in the DLQ. Stripe objects that are not ours (no mapping, no ``flexprice_*`` metadata) are
  recorded as ``not_ours`` and change nothing.
- Inbound customers never echo back: they are created with the Stripe customer as their integration mapping, which
  is exactly the path on which ``customers.create`` queues no outbound sync.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing import stripe_edge, wiring
from billing.domain.money import from_minor_units
from billing.errors import AlreadyExists, InvalidOperation, NotFound, ValidationFailed, VersionConflict
from billing.observability import logger, metrics
from billing.schemas.customers import CustomerCreate
from billing.scope import Scope
from billing.services import customers, invoices, mappings, payment_methods, stripe_sync
from billing.store import catalog
from billing.store import invoices as invoice_keys
from billing.store.dynamo import ConditionFailed
from billing.timeutil import iso, utcnow

PROVIDER = "stripe"
WRITE_ATTEMPTS = 4
Effect = Callable[[Scope, dict[str, Any]], str]


class UnknownObject(NotFound):
    """The event is about one of our objects that is not here (yet): retry, then DLQ."""


def _object(event: dict[str, Any]) -> dict[str, Any]:
    obj: dict[str, Any] = event["data"]["object"]
    return obj


def _metadata(obj: dict[str, Any] | None) -> dict[str, str]:
    return dict((obj or {}).get("metadata") or {})


def _id(value: Any) -> str | None:
    """An expandable Stripe field: an id, or the expanded object."""
    if isinstance(value, dict):
        return str(value.get("id")) if value.get("id") else None
    return str(value) if value else None


def _when(unix: Any) -> datetime:
    return datetime.fromtimestamp(int(unix), UTC) if unix else utcnow()


def _client(scope: Scope) -> Any:
    edge = stripe_edge.connect(scope)
    if edge is None:
        raise UnknownObject("no active Stripe connection in this environment", {"provider": PROVIDER})
    return edge.client


# ---------------------------------------------------------------------------------------------- invoices


def _our_invoice(scope: Scope, stripe_invoice_id: str | None, metadata: dict[str, str]) -> dict[str, Any] | None:
    """Our invoice for a Stripe invoice: by its entity mapping, else by our id in its metadata. None: not ours."""
    ours: str | None = None
    if stripe_invoice_id:
        mapping = mappings.find_by_provider_id(scope, PROVIDER, "invoice", stripe_invoice_id)
        ours = mapping["entity_id"] if mapping else None
    ours = ours or metadata.get("flexprice_invoice_id")
    if not ours:
        return None
    found = invoice_keys.invoices().find(scope, ours)
    if found is None:
        raise UnknownObject(
            f"invoice {ours} is not known yet", {"invoice_id": ours, "stripe_invoice": stripe_invoice_id}
        )
    return found


def _payment_id(stripe_ref: str, at: datetime) -> str:
    """``pay_`` + a ULID-shaped id derived from the Stripe payment it records (the same payment, the same id)."""
    digest = hashlib.sha256(stripe_ref.encode()).digest()
    value = (int(at.timestamp() * 1000) << 80) | int.from_bytes(digest[:10], "big")
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    chars = []
    for _ in range(26):
        chars.append(alphabet[value & 31])
        value >>= 5
    return "pay_" + "".join(reversed(chars))


def payments_key(scope: Scope, invoice_id: str) -> str:
    return f"{scope.prefix}#invoice_payments#{invoice_id}"


def _record_payment(
    scope: Scope, invoice: dict[str, Any], amount: Decimal, paid_at: datetime, stripe_ref: str, method: str | None
) -> None:
    """One payment item per Stripe payment (``PK=<p>#stripe_payment``, ``SK=<pay id>``, listed per invoice on GSI1)."""
    payment_id = _payment_id(stripe_ref, paid_at)
    now = iso(utcnow())
    item = {
        "PK": f"{scope.prefix}#stripe_payment",
        "SK": payment_id,
        "GSI1PK": payments_key(scope, invoice["id"]),
        "GSI1SK": payment_id,
        "id": payment_id,
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "destination_type": "INVOICE",
        "destination_id": invoice["id"],
        "amount": amount,
        "currency": invoice["currency"],
        "payment_method_type": "CARD",
        "payment_method_id": method,
        "payment_gateway": PROVIDER,
        "gateway_payment_id": stripe_ref,
        "payment_status": "SUCCEEDED",
        "succeeded_at": iso(paid_at),
        "created_at": now,
        "updated_at": now,
    }
    try:
        wiring.entities().put(item, condition="attribute_not_exists(PK)")
        metrics.add_metric(name="PaymentRecorded", unit="Count", value=1)
    except ConditionFailed:
        pass  # recorded by an earlier delivery


def payments_of(scope: Scope, invoice_id: str) -> list[dict[str, Any]]:
    return wiring.entities().query(payments_key(scope, invoice_id), index="GSI1")


def mark_paid(
    scope: Scope,
    invoice: dict[str, Any],
    *,
    amount_minor: int | None,
    currency: str | None,
    paid_at: datetime,
    stripe_ref: str,
    method: str | None = None,
) -> str:
    invoice_id = invoice["id"]
    if currency and currency.lower() != str(invoice["currency"]).lower():
        logger.warning("stripe payment currency differs from the invoice's", extra={"invoice_id": invoice_id})
        return "rejected_currency"
    amount = from_minor_units(int(amount_minor), invoice["currency"]) if amount_minor else None
    outcome = "already_paid"
    for _ in range(WRITE_ATTEMPTS):
        current = invoices.get(scope, invoice_id)
        if current["payment_status"] in ("SUCCEEDED", "OVERPAID"):
            break
        if current["invoice_status"] != "FINALIZED":
            return f"ignored_{str(current['invoice_status']).lower()}"
        from billing.schemas.invoices import PaymentUpdate

        try:
            invoices.update_payment(
                scope, invoice_id, PaymentUpdate(payment_status="SUCCEEDED", amount=amount), paid_at
            )
        except VersionConflict:
            continue
        except InvalidOperation as err:
            logger.warning("stripe payment not applied", extra={"invoice_id": invoice_id, "reason": err.message})
            return "rejected"
        outcome = "paid"
        metrics.add_metric(name="InvoicePaid", unit="Count", value=1)
        break
    else:
        raise VersionConflict(f"invoice {invoice_id} kept changing; retry")
    final = invoices.get(scope, invoice_id)
    _record_payment(scope, final, Decimal(final.get("amount_paid") or 0), paid_at, stripe_ref, method)
    return outcome


def mark_failed(scope: Scope, invoice: dict[str, Any]) -> str:
    invoice_id = invoice["id"]
    for _ in range(WRITE_ATTEMPTS):
        current = invoices.get(scope, invoice_id)
        status = current["payment_status"]
        if status in ("SUCCEEDED", "OVERPAID"):
            return "ignored_already_paid"  # status only moves forward
        if status == "FAILED":
            return "already_failed"
        if current["invoice_status"] != "FINALIZED":
            return f"ignored_{str(current['invoice_status']).lower()}"
        from billing.schemas.invoices import PaymentUpdate

        try:
            invoices.update_payment(scope, invoice_id, PaymentUpdate(payment_status="FAILED"), utcnow())
        except VersionConflict:
            continue
        except InvalidOperation as err:
            logger.warning("stripe failure not applied", extra={"invoice_id": invoice_id, "reason": err.message})
            return "rejected"
        metrics.add_metric(name="InvoicePaymentFailed", unit="Count", value=1)
        return "failed"
    raise VersionConflict(f"invoice {invoice_id} kept changing; retry")


def invoice_paid(scope: Scope, event: dict[str, Any]) -> str:
    obj = _object(event)
    if obj.get("object") == "invoice_payment":
        # invoice_payment.paid carries no metadata: applied when the invoice is linked; invoice.paid, which Stripe
        # sends for the same payment, carries our id and is applied in any case.
        stripe_invoice = _id(obj.get("invoice"))
        mapping = mappings.find_by_provider_id(scope, PROVIDER, "invoice", stripe_invoice) if stripe_invoice else None
        if mapping is None:
            return "not_linked"
        invoice = _our_invoice(scope, stripe_invoice, {})
        transitions = obj.get("status_transitions") or {}
        ref = _id((obj.get("payment") or {}).get("payment_intent")) or str(obj.get("id"))
        amount = obj.get("amount_paid")
    else:
        invoice = _our_invoice(scope, _id(obj.get("id")), _metadata(obj))
        transitions = obj.get("status_transitions") or {}
        ref = _id(obj.get("payment_intent")) or _id(obj.get("charge")) or str(obj.get("id"))
        amount = obj.get("amount_paid")
    if invoice is None:
        return "not_ours"
    return mark_paid(
        scope,
        invoice,
        amount_minor=int(amount) if amount else None,
        currency=obj.get("currency"),
        paid_at=_when(transitions.get("paid_at") or event.get("created")),
        stripe_ref=ref,
    )


def invoice_failed(scope: Scope, event: dict[str, Any]) -> str:
    obj = _object(event)
    invoice = _our_invoice(scope, _id(obj.get("id")), _metadata(obj))
    return "not_ours" if invoice is None else mark_failed(scope, invoice)


def invoice_finalized(scope: Scope, event: dict[str, Any]) -> str:
    obj = _object(event)
    invoice = _our_invoice(scope, _id(obj.get("id")), _metadata(obj))
    return "not_ours" if invoice is None else "recorded"


def invoice_voided(scope: Scope, event: dict[str, Any]) -> str:
    obj = _object(event)
    invoice = _our_invoice(scope, _id(obj.get("id")), _metadata(obj))
    if invoice is None:
        return "not_ours"
    if invoice["invoice_status"] == "VOIDED":
        return "already_voided"
    for _ in range(WRITE_ATTEMPTS):
        try:
            invoices.void(scope, invoice["id"], _when(event.get("created")))
        except VersionConflict:
            continue
        except InvalidOperation as err:
            logger.warning("stripe void not applied", extra={"invoice_id": invoice["id"], "reason": err.message})
            return "rejected"
        return "voided"
    raise VersionConflict(f"invoice {invoice['id']} kept changing; retry")


# ---------------------------------------------------------------------------------------------- cards and payments


def _apply_card(scope: Scope, metadata: dict[str, str], payment_method: str | None) -> str:
    """The saved card becomes the default when the session or intent asked for it (applying twice is harmless)."""
    customer_id = metadata.get("flexprice_customer_id")
    if not customer_id:
        return "not_ours"
    if metadata.get("flexprice_set_default") != "true" and metadata.get("save_card_and_make_default") != "true":
        return "card_saved"
    if not payment_method:
        raise UnknownObject("the confirmation names no payment method", {"customer_id": customer_id})
    payment_methods.set_default(scope, customer_id, payment_method)
    return "default_set"


def checkout_completed(scope: Scope, event: dict[str, Any]) -> str:
    session = _object(event)
    metadata = _metadata(session)
    if not any(key.startswith("flexprice_") for key in metadata):
        return "not_ours"
    mode = session.get("mode")
    method: str | None
    if mode == "setup":
        if metadata.get("flexprice_purpose") != "save_card":
            return "recorded"
        intent = session.get("setup_intent")
        method = _id(intent.get("payment_method")) if isinstance(intent, dict) else None
        if method is None and intent:
            method = _id(_client(scope).v1.setup_intents.retrieve(_id(intent)).payment_method)
        return _apply_card(scope, metadata, method)
    if mode == "payment":
        outcomes = []
        intent = session.get("payment_intent")
        method = _id(intent.get("payment_method")) if isinstance(intent, dict) else None
        if method is None and intent:
            method = _id(_client(scope).v1.payment_intents.retrieve(_id(intent)).payment_method)
        payment_id = metadata.get("flexprice_payment_id")
        if payment_id and session.get("payment_status") == "paid":
            outcomes.append(_our_payment_paid(scope, payment_id, session, _id(intent), method, event))
        invoice = None if payment_id else _our_invoice(scope, None, metadata)
        if invoice is not None and session.get("payment_status") == "paid":
            outcomes.append(
                mark_paid(
                    scope,
                    invoice,
                    amount_minor=session.get("amount_total"),
                    currency=session.get("currency"),
                    paid_at=_when(event.get("created")),
                    stripe_ref=_id(intent) or str(session["id"]),
                    method=method,
                )
            )
        outcomes.append(_apply_card(scope, metadata, method))
        return ",".join(outcomes)
    return "recorded"


def setup_intent_succeeded(scope: Scope, event: dict[str, Any]) -> str:
    intent = _object(event)
    metadata = _metadata(intent)
    if metadata.get("flexprice_purpose") != "save_card":
        return "not_ours"
    return _apply_card(scope, metadata, _id(intent.get("payment_method")))


def _our_payment_paid(
    scope: Scope, payment_id: str, obj: dict[str, Any], intent: str | None, method: str | None, event: dict[str, Any]
) -> str:
    """A payment created by ``POST /payments`` (metadata ``flexprice_payment_id``): settled by the payments service,
    which applies it to its invoice once."""
    from billing.services import payments  # deferred: payments imports this module

    amount = obj.get("amount_total") if obj.get("object") == "checkout.session" else obj.get("amount_received")
    return payments.gateway_succeeded(
        scope,
        payment_id,
        gateway_payment_id=intent,
        payment_method_id=method,
        amount_minor=int(amount) if amount else None,
        currency=obj.get("currency"),
        at=_when(event.get("created")),
    )


def payment_intent_succeeded(scope: Scope, event: dict[str, Any]) -> str:
    intent = _object(event)
    metadata = _metadata(intent)
    if metadata.get("flexprice_payment_id"):
        return _our_payment_paid(
            scope, metadata["flexprice_payment_id"], intent, str(intent["id"]), _id(intent.get("payment_method")), event
        )
    if not metadata.get("flexprice_invoice_id"):
        # Stripe's own invoice payments are applied from the invoice events that accompany them.
        return "handled_by_invoice_event" if intent.get("invoice") else "not_ours"
    invoice = _our_invoice(scope, None, metadata)
    assert invoice is not None
    return mark_paid(
        scope,
        invoice,
        amount_minor=intent.get("amount_received") or intent.get("amount"),
        currency=intent.get("currency"),
        paid_at=_when(intent.get("created") or event.get("created")),
        stripe_ref=str(intent["id"]),
        method=_id(intent.get("payment_method")),
    )


def payment_intent_failed(scope: Scope, event: dict[str, Any]) -> str:
    intent = _object(event)
    metadata = _metadata(intent)
    if metadata.get("flexprice_payment_id"):
        from billing.services import payments  # deferred: payments imports this module

        error = intent.get("last_payment_error") or {}
        return payments.gateway_failed(
            scope, metadata["flexprice_payment_id"], message=error.get("message"), gateway_payment_id=str(intent["id"])
        )
    if not metadata.get("flexprice_invoice_id"):
        return "handled_by_invoice_event" if intent.get("invoice") else "not_ours"
    invoice = _our_invoice(scope, None, metadata)
    assert invoice is not None
    return mark_failed(scope, invoice)


# ---------------------------------------------------------------------------------------------- customers


def _inbound(scope: Scope) -> bool:
    return stripe_edge.syncs(stripe_edge.active_connection(scope), "customer", "inbound")


def customer_changed(scope: Scope, event: dict[str, Any]) -> str:
    """``customer.created`` / ``customer.updated`` with inbound customer sync on: a linked customer takes the Stripe
    customer's name, email and address (never echoed back out); an unlinked one is linked to ours or created here."""
    obj = _object(event)
    stripe_id = str(obj["id"])
    if not _inbound(scope):
        return "inbound_off"
    linked = mappings.find_by_provider_id(scope, PROVIDER, "customer", stripe_id)
    if linked is not None:
        if event.get("type") != "customer.updated":
            return "already_linked"
        return customers.apply_from_stripe(scope, linked["entity_id"], obj, _when(event.get("created")))
    if obj.get("deleted"):
        return "recorded"
    if _deleted_at_stripe(scope, stripe_id):
        return "ignored_deleted"  # a late event about a customer Stripe has deleted since: nothing to link
    metadata = _metadata(obj)
    repo = catalog.customers()
    candidate = repo.find(scope, metadata["flexprice_customer_id"]) if metadata.get("flexprice_customer_id") else None
    email = obj.get("email")
    if candidate is None and email:
        candidate = next(
            (c for c in repo.list(scope) if c.get("status") == "published" and c.get("email") == email), None
        )
    if candidate is not None:
        if mappings.find(scope, "customer", candidate["id"], PROVIDER) is not None:
            logger.warning(
                "stripe customer matches a customer linked to another Stripe customer",
                extra={"customer_id": candidate["id"], "stripe_customer": stripe_id},
            )
            return "conflict"
        mappings.link(scope, "customer", candidate["id"], PROVIDER, stripe_id, {"source": "inbound"}, actor="stripe")
        return "linked"
    fields: dict[str, Any] = {
        "external_id": metadata.get("flexprice_external_id") or stripe_id,
        "name": obj.get("name") or email or stripe_id,
        "email": email,
        "integration_entity_mapping": [{"provider_type": PROVIDER, "provider_entity_id": stripe_id}],
    }
    try:
        request = CustomerCreate.model_validate(fields)
    except ValueError:
        request = CustomerCreate.model_validate({**fields, "email": None})
    try:
        customers.create(scope, request, actor="stripe")
    except AlreadyExists:
        if mappings.find_by_provider_id(scope, PROVIDER, "customer", stripe_id) is not None:
            return "already_linked"
        raise
    except ValidationFailed:
        return "rejected"
    metrics.add_metric(name="CustomerCreatedFromStripe", unit="Count", value=1)
    return "created"


def _deleted_at_stripe(scope: Scope, stripe_id: str) -> bool:
    edge = stripe_edge.connect(scope)
    if edge is None:
        return False
    try:
        theirs = edge.client.v1.customers.retrieve(stripe_id)
    except stripe_edge.sdk().InvalidRequestError:
        return False  # Stripe answers a deleted customer with its stub; anything else is not evidence of deletion
    return bool(getattr(theirs, "deleted", False))


def customer_deleted(scope: Scope, event: dict[str, Any]) -> str:
    """``customer.deleted``: the link to the deleted Stripe customer is removed (mapping and claims), whatever the
    sync settings, so the next sync or card setup creates a fresh Stripe customer instead of failing."""
    ours = stripe_sync.forget_deleted(scope, str(_object(event)["id"]))
    return "not_linked" if ours is None else "unlinked"


# ---------------------------------------------------------------------------------------------- subscriptions


def subscription_changed(scope: Scope, event: dict[str, Any]) -> str:
    """Linked to ours when its metadata names one of our subscriptions; otherwise only recorded."""
    obj = _object(event)
    ours = _metadata(obj).get("flexprice_subscription_id")
    if not ours or invoice_keys.subscriptions().find(scope, ours) is None:
        return "recorded"
    try:
        mappings.link(scope, "subscription", ours, PROVIDER, str(obj["id"]), {"source": "inbound"}, actor="stripe")
    except AlreadyExists:
        return "conflict"
    return "linked"


DISPATCH: dict[str, Effect] = {
    "checkout.session.completed": checkout_completed,
    "setup_intent.succeeded": setup_intent_succeeded,
    "invoice.paid": invoice_paid,
    "invoice.payment_succeeded": invoice_paid,
    "invoice_payment.paid": invoice_paid,
    "invoice.payment_failed": invoice_failed,
    "invoice.marked_uncollectible": invoice_failed,
    "invoice.finalized": invoice_finalized,
    "invoice.voided": invoice_voided,
    "payment_intent.succeeded": payment_intent_succeeded,
    "payment_intent.payment_failed": payment_intent_failed,
    "customer.created": customer_changed,
    "customer.updated": customer_changed,
    "customer.deleted": customer_deleted,
    "customer.subscription.created": subscription_changed,
    "customer.subscription.updated": subscription_changed,
    "customer.subscription.deleted": subscription_changed,
    "customer.subscription.paused": subscription_changed,
    "customer.subscription.resumed": subscription_changed,
    "customer.subscription.trial_will_end": subscription_changed,
    "customer.subscription.pending_update_applied": subscription_changed,
    "customer.subscription.pending_update_expired": subscription_changed,
}
