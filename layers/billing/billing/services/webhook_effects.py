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

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from billing import stripe_edge
from billing.domain.collection import stripe_settlement
from billing.domain.money import from_minor_units
from billing.errors import AlreadyExists, InvalidOperation, NotFound, ValidationFailed, VersionConflict
from billing.observability import logger, metrics
from billing.schemas.customers import CustomerCreate
from billing.scope import Scope
from billing.services import customers, invoices, ledger, mappings, payment_methods, payments, stripe_sync
from billing.store import catalog
from billing.store import invoices as invoice_keys
from billing.timeutil import utcnow

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


def _received(obj: dict[str, Any]) -> list[ledger.Received]:
    """What a paid Stripe invoice brought in: cash Stripe charged, credit taken from the customer's balance."""
    currency = str(obj.get("currency") or "usd")
    split = stripe_settlement(
        total=int(obj.get("total") or 0),
        amount_due=int(obj.get("amount_due") or 0),
        amount_paid=int(obj.get("amount_paid") or 0),
        paid_out_of_band=bool(obj.get("paid_out_of_band")),
        starting_balance=int(obj.get("starting_balance") or 0),
    )
    out = []
    if split.cash_minor > 0:
        ref = _id(obj.get("payment_intent")) or _id(obj.get("charge")) or f"invoice:{obj.get('id')}"
        out.append(ledger.Received(ref, from_minor_units(split.cash_minor, currency), "CARD"))
    if split.credit_minor > 0:
        out.append(
            ledger.Received(f"balance:{obj.get('id')}", from_minor_units(split.credit_minor, currency), "CREDITS")
        )
    if split.carried_minor > 0:
        logger.warning(
            "Stripe marked an invoice paid and carried its amount to the customer's balance",
            extra={"stripe_invoice": obj.get("id"), "carried_minor": split.carried_minor},
        )
        metrics.add_metric(name="StripeAmountCarriedForward", unit="Count", value=1)
    return out


def mark_paid(scope: Scope, invoice: dict[str, Any], stripe_invoice: dict[str, Any]) -> str:
    """A Stripe invoice is paid: record what Stripe actually collected (never more, never a phantom payment)."""
    currency = stripe_invoice.get("currency")
    if currency and str(currency).lower() != str(invoice["currency"]).lower():
        logger.warning("stripe payment currency differs from the invoice's", extra={"invoice_id": invoice["id"]})
        return "rejected_currency"
    if stripe_invoice.get("status") != "paid":
        return f"ignored_stripe_{stripe_invoice.get('status')}"
    paid_at = ledger.when((stripe_invoice.get("status_transitions") or {}).get("paid_at"))
    outcome = ledger.record_received(scope, invoice["id"], _received(stripe_invoice), paid_at)
    if outcome == "paid":
        final = invoices.get(scope, invoice["id"])
        if final["payment_status"] in ("SUCCEEDED", "OVERPAID"):
            metrics.add_metric(name="InvoicePaid", unit="Count", value=1)
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
    """``invoice.paid`` / ``invoice.payment_succeeded`` / ``invoice_payment.paid``: applied from the Stripe invoice as
    it stands now (one read), so any of the three, in any order and any number of times, records the payment once."""
    obj = _object(event)
    if obj.get("object") == "invoice_payment":
        stripe_invoice_id = _id(obj.get("invoice"))
        if not stripe_invoice_id or mappings.find_by_provider_id(scope, PROVIDER, "invoice", stripe_invoice_id) is None:
            return "not_linked"
        invoice = _our_invoice(scope, stripe_invoice_id, {})
    else:
        stripe_invoice_id = _id(obj.get("id"))
        invoice = _our_invoice(scope, stripe_invoice_id, _metadata(obj))
    if invoice is None or not stripe_invoice_id:
        return "not_ours"
    # A paid Stripe invoice is final (its amounts never change again), so an invoice event that shows it paid is
    # applied as it is; anything else is read from Stripe as it stands now.
    current = obj if obj.get("object") == "invoice" and obj.get("status") == "paid" else None
    if current is None:
        current = _client(scope).v1.invoices.retrieve(stripe_invoice_id).to_dict()
    return mark_paid(scope, invoice, current)


def invoice_action_required(scope: Scope, event: dict[str, Any]) -> str:
    """The card needs the customer's authentication: the invoice is marked FAILED (visible, still payable on its
    hosted page, after which ``invoice.paid`` makes it SUCCEEDED)."""
    obj = _object(event)
    invoice = _our_invoice(scope, _id(obj.get("id")), _metadata(obj))
    if invoice is None:
        return "not_ours"
    metrics.add_metric(name="InvoicePaymentActionRequired", unit="Count", value=1)
    return mark_failed(scope, invoice)


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
            invoices.void(scope, invoice["id"], _when(event.get("created")), from_stripe=True)
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
                _received_directly(
                    scope,
                    invoice,
                    session.get("amount_total"),
                    session.get("currency"),
                    _id(intent) or str(session["id"]),
                    method,
                    event,
                )
            )
        outcomes.append(_apply_card(scope, metadata, method))
        return ",".join(outcomes)
    return "recorded"


def _received_directly(
    scope: Scope,
    invoice: dict[str, Any],
    amount_minor: Any,
    currency: Any,
    ref: str,
    method: str | None,
    event: dict[str, Any],
) -> str:
    """A payment Stripe took for one of our invoices outside a Stripe invoice (its metadata names the invoice)."""
    if not amount_minor or int(amount_minor) <= 0:
        return "rejected_amount"  # a payment event without a positive amount never marks anything paid
    if currency and str(currency).lower() != str(invoice["currency"]).lower():
        return "rejected_currency"
    amount = from_minor_units(int(amount_minor), invoice["currency"])
    received = [ledger.Received(ref, amount, "CARD", method)]
    return ledger.record_received(scope, invoice["id"], received, _when(event.get("created")))


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
    amount = obj.get("amount_total") if obj.get("object") == "checkout.session" else obj.get("amount_received")
    return payments.gateway_succeeded(
        scope,
        payment_id,
        gateway_payment_id=intent,
        payment_method_id=method,
        amount_minor=int(amount) if amount is not None else None,
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
    return _received_directly(
        scope,
        invoice,
        intent.get("amount_received"),
        intent.get("currency"),
        str(intent["id"]),
        _id(intent.get("payment_method")),
        event,
    )


def payment_intent_failed(scope: Scope, event: dict[str, Any]) -> str:
    intent = _object(event)
    metadata = _metadata(intent)
    if metadata.get("flexprice_payment_id"):
        error = intent.get("last_payment_error") or {}
        return payments.gateway_failed(
            scope, metadata["flexprice_payment_id"], message=error.get("message"), gateway_payment_id=str(intent["id"])
        )
    if not metadata.get("flexprice_invoice_id"):
        return "handled_by_invoice_event" if intent.get("invoice") else "not_ours"
    invoice = _our_invoice(scope, None, metadata)
    assert invoice is not None
    return mark_failed(scope, invoice)


# ---------------------------------------------------------------------------------------------- refunds, disputes

_NO_FUNDS_MOVED = ("won", "warning_closed", "warning_needs_response", "warning_under_review")


def _payment_for_charge(scope: Scope, client: Any, charge: dict[str, Any]) -> dict[str, Any] | None:
    """Our payment item for a Stripe charge: by our payment id on its payment intent, else among the payments of
    the invoice it paid (linked Stripe invoice, or our id in metadata)."""
    intent_id = _id(charge.get("payment_intent"))
    metadata = _metadata(charge)
    intent: dict[str, Any] = {}
    if intent_id and not metadata.get("flexprice_payment_id"):
        intent = client.v1.payment_intents.retrieve(intent_id).to_dict()
        metadata = {**_metadata(intent), **metadata}
    payment_id = metadata.get("flexprice_payment_id")
    if payment_id:
        found = payments.repo().find(scope, payment_id)
        if found is not None:
            return {**found, "PK": f"{scope.prefix}#payment"}
    invoice = None
    stripe_invoice = _id(charge.get("invoice")) or _id(intent.get("invoice"))
    if stripe_invoice:
        invoice = _our_invoice(scope, stripe_invoice, {})
    if invoice is None and metadata.get("flexprice_invoice_id"):
        invoice = _our_invoice(scope, None, metadata)
    if invoice is None:
        return None
    refs = {ref for ref in (intent_id, _id(charge.get("id"))) if ref}
    for item in ledger.payments_of(scope, invoice["id"]):
        if item.get("gateway_payment_id") in refs and item.get("payment_status") != "FAILED":
            return item
    raise UnknownObject(f"the payment of charge {charge.get('id')} is not recorded yet", {"invoice_id": invoice["id"]})


def withheld_by_disputes(client: Any, charge: dict[str, Any]) -> int:
    """Minor units a charge's disputes hold now: withdrawn while open or lost, given back when won (inquiries move
    no funds). The charge says only whether it is disputed; its disputes are listed by charge."""
    if not charge.get("disputed"):
        return 0
    listed = client.v1.disputes.list({"charge": str(charge["id"]), "limit": 100})
    return sum(int(d.amount or 0) for d in listed.data if d.status not in _NO_FUNDS_MOVED)


def charge_changed(scope: Scope, event: dict[str, Any]) -> str:
    """``charge.refunded``, ``charge.refund.updated``, ``charge.dispute.*``: the payment and its invoice follow the
    charge's current refunded amount and the funds its dispute holds (read from Stripe, so order doesn't matter)."""
    obj = _object(event)
    kind = obj.get("object")
    charge_id = _id(obj.get("charge")) if kind in ("dispute", "refund") else _id(obj.get("id"))
    if not charge_id:
        return "not_ours"
    client = _client(scope)
    charge = client.v1.charges.retrieve(charge_id).to_dict()
    payment = _payment_for_charge(scope, client, charge)
    if payment is None:
        return "not_ours"
    currency = str(payment["currency"])
    refunded = from_minor_units(int(charge.get("amount_refunded") or 0), currency)
    disputed = from_minor_units(withheld_by_disputes(client, charge), currency)
    state = ledger.ChargeState(refunded=refunded, disputed=disputed)
    return ledger.apply_charge_state(scope, payment, state, _when(event.get("created")))


def checkout_expired(scope: Scope, event: dict[str, Any]) -> str:
    """A payment page of ours expired unpaid: its payment failed and no longer holds the invoice."""
    session = _object(event)
    payment_id = _metadata(session).get("flexprice_payment_id")
    if not payment_id:
        return "not_ours" if not _metadata(session).get("flexprice_customer_id") else "recorded"
    return payments.gateway_expired(scope, payment_id)


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
    "invoice.payment_action_required": invoice_action_required,
    "checkout.session.expired": checkout_expired,
    "charge.refunded": charge_changed,
    "charge.refund.updated": charge_changed,
    "charge.dispute.created": charge_changed,
    "charge.dispute.updated": charge_changed,
    "charge.dispute.closed": charge_changed,
    "charge.dispute.funds_withdrawn": charge_changed,
    "charge.dispute.funds_reinstated": charge_changed,
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
