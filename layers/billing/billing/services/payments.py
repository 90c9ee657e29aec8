"""Payments toward invoices (``POST /payments``, ``GET /payments/{id}``, ``GET /payments``).

Methods:

- ``OFFLINE``: recorded SUCCEEDED at once and applied to the invoice in the same transaction.
- ``CARD``: an off-session Stripe PaymentIntent (``confirm``, ``off_session``) on the given payment method or the
  Stripe customer's default one; none saved → 400 telling the caller to run the card-setup flow. The answer is known
  synchronously: SUCCEEDED (applied to the invoice) or FAILED with Stripe's message (the invoice turns FAILED).
- ``PAYMENT_LINK``: a Stripe Checkout Session in payment mode for the amount; the payment stays PENDING until the
  ``checkout.session.completed`` webhook reports it paid (``webhook_effects`` calls ``gateway_succeeded``).
- ``CREDITS``, ``ACH``, ``UPI``: refused (400 ``invalid_operation``); wallets are not part of the product.

Applying a payment to its invoice adds the amount to ``amount_paid``: when it covers ``amount_due`` the invoice is
SUCCEEDED (OVERPAID beyond it), otherwise it stays PENDING with a smaller ``amount_remaining``. The payment's status
change and the invoice change are one DynamoDB transaction guarded by both versions, so a payment is applied once.

Idempotency: ``idempotency_key`` is claimed in the transaction that writes the payment. The same key with the same
request answers the first payment (its current state); with a different request → 409 ``already_exists``. A payment
whose Stripe call did not complete (Stripe unreachable) is resumed by that replay with the same Stripe idempotency
key, derived from our payment id, so Stripe never creates a second PaymentIntent or Checkout Session.

Item layout (``EntitiesTable``): ``PK=<p>#payment``, ``SK=<pay id>``; ``GSI1PK=<p>#invoice_payments#<inv id>``,
``GSI1SK=<pay id>`` (shared with the ``stripe_payment`` items the webhook writes for Stripe-collected invoices, so
a destination lists both); claim ``PK=<p>#payment#idempotency_key``, ``SK=<key>``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from billing import stripe_edge, stripe_gateway, wiring
from billing.domain.collection import STRIPE, payment_collector
from billing.domain.money import from_minor_units, round_minor, to_minor_units
from billing.errors import (
    AlreadyExists,
    Conflict,
    InvalidOperation,
    ServiceUnavailable,
    ValidationFailed,
    VersionConflict,
    not_found,
)
from billing.ids import new_id, ulid
from billing.observability import logger, metrics
from billing.schemas.payments import PaymentCreate, PaymentFilter
from billing.scope import Scope
from billing.services import collection, invoices, mappings, stripe_sync
from billing.services.ledger import invoice_put_op, payments_key, stripe_payments_pk
from billing.store import invoices as invoice_keys
from billing.store.dynamo import ConditionFailed
from billing.store.entities import Entities, strip_keys
from billing.timeutil import iso, utcnow

GATEWAY = "stripe"
WRITE_ATTEMPTS = 4
LINK_LEASE = timedelta(hours=24) + collection.LINK_LEASE_MARGIN  # Checkout Sessions expire after 24 hours
PAID = ("SUCCEEDED", "OVERPAID")
UNSUPPORTED = {
    "CREDITS": "CREDITS payments need wallets, which this product does not offer",
    "ACH": "ACH payments are not supported; use CARD, PAYMENT_LINK or OFFLINE",
    "UPI": "UPI payments are not supported; use CARD, PAYMENT_LINK or OFFLINE",
}


def repo() -> Entities:
    return Entities(wiring.entities(), "payment", "payment")


# ---------------------------------------------------------------------------------------------- reads


def get(scope: Scope, payment_id: str) -> dict[str, Any]:
    found = repo().find(scope, payment_id)
    if found is None:
        item = wiring.entities().get(stripe_payments_pk(scope), payment_id)
        found = strip_keys(item) if item else None
    if found is None:
        raise not_found("payment", payment_id)
    return found


def search(scope: Scope, criteria: PaymentFilter) -> list[dict[str, Any]]:
    """Newest first: one Query per destination invoice, else the payment and Stripe-payment partitions."""
    table = wiring.entities()
    if criteria.destination_id:
        items = table.query(payments_key(scope, criteria.destination_id), index="GSI1", forward=False)
    else:
        items = table.query(f"{scope.prefix}#payment", forward=False)
        items += table.query(stripe_payments_pk(scope), forward=False)
        items.sort(key=lambda item: str(item["id"]), reverse=True)
    records = [strip_keys(item) for item in items]
    return criteria.arrange([r for r in records if criteria.keep(r)])


# ---------------------------------------------------------------------------------------------- create


def _fingerprint(request: PaymentCreate) -> str:
    canonical = json.dumps(request.fingerprint(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(scope: Scope, request: PaymentCreate) -> dict[str, Any] | None:
    """The payment an earlier request with this ``idempotency_key`` created (resumed if its gateway call is
    unfinished); 409 when that request differed."""
    if not request.idempotency_key:
        return None
    payment_id = repo().lookup_unique(scope, "idempotency_key", request.idempotency_key)
    if payment_id is None:
        return None
    existing = repo().get(scope, payment_id)
    if existing.get("request_hash") != _fingerprint(request):
        raise AlreadyExists(
            f"idempotency_key {request.idempotency_key!r} was already used for a different payment request",
            {"field": "idempotency_key", "payment_id": payment_id},
        )
    return _resume(scope, existing)


def _destination(scope: Scope, request: PaymentCreate) -> dict[str, Any]:
    if request.destination_type != "INVOICE":
        raise InvalidOperation(
            "only INVOICE destinations are supported", {"field": "destination_type", "value": request.destination_type}
        )
    invoice = invoices.get(scope, request.destination_id)
    invoice_id, status = invoice["id"], invoice["invoice_status"]
    if status != "FINALIZED":
        raise InvalidOperation(
            f"invoice {invoice_id} is {status}; payments need a FINALIZED invoice", {"invoice_status": status}
        )
    remaining = Decimal(invoice.get("amount_remaining") or 0)
    if invoice["payment_status"] in PAID or remaining <= 0:
        raise InvalidOperation(f"invoice {invoice_id} is already paid", {"payment_status": invoice["payment_status"]})
    if request.currency != str(invoice["currency"]).lower():
        raise ValidationFailed(
            f"currency {request.currency} differs from the invoice's ({invoice['currency']})",
            {"field": "currency", "invoice_currency": invoice["currency"]},
        )
    if request.amount > remaining:
        raise ValidationFailed(
            f"amount {request.amount} exceeds the invoice's amount_remaining {remaining}",
            {"field": "amount", "amount_remaining": str(remaining)},
        )
    return invoice


def _new(scope: Scope, request: PaymentCreate, invoice: dict[str, Any], now: datetime, **fields: Any) -> dict[str, Any]:
    stamp = iso(now)
    return {
        "id": new_id("payment"),
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "idempotency_key": request.idempotency_key or ulid(),
        "request_hash": _fingerprint(request),
        "destination_type": "INVOICE",
        "destination_id": invoice["id"],
        "invoice_number": invoice.get("invoice_number"),
        "customer_id": invoice["customer_id"],
        "payment_method_type": request.payment_method_type,
        "payment_method_id": request.payment_method_id,
        "payment_gateway": None,
        "amount": request.amount,
        "currency": request.currency,
        "save_card_and_make_default": request.save_card_and_make_default,
        "success_url": request.success_url,
        "cancel_url": request.cancel_url,
        "metadata": request.metadata or {},
        "status": "published",
        "created_at": stamp,
        "updated_at": stamp,
        "version": 1,
        **fields,
    }


def _indexes(scope: Scope, record: dict[str, Any]) -> dict[str, str]:
    return {"GSI1PK": payments_key(scope, str(record["destination_id"])), "GSI1SK": str(record["id"])}


def _insert(
    scope: Scope, request: PaymentCreate, record: dict[str, Any], extra_ops: list[dict[str, Any]] | None = None
) -> tuple[dict[str, Any], bool]:
    """Write the payment with its idempotency claim; (payment, created). A lost race on the key replays."""
    try:
        created = repo().create(
            scope,
            record,
            indexes=_indexes(scope, record),
            unique={"idempotency_key": record["idempotency_key"]},
            extra_ops=extra_ops or [],
        )
    except AlreadyExists:
        replayed = _replay(scope, request)
        if replayed is None:  # the claim's holder vanished: cannot happen with transactional claims
            raise
        return replayed, False
    metrics.add_metric(name="PaymentCreated", unit="Count", value=1)
    return created, True


def create(scope: Scope, request: PaymentCreate, now: datetime | None = None) -> dict[str, Any]:
    at = now or utcnow()
    replayed = _replay(scope, request)
    if replayed is not None:
        return replayed
    method = request.payment_method_type
    if method in UNSUPPORTED:
        raise InvalidOperation(UNSUPPORTED[method], {"field": "payment_method_type", "value": method})
    if not request.process_payment:
        raise InvalidOperation(
            "process_payment=false is not supported: payments are processed when created", {"field": "process_payment"}
        )
    if method != "OFFLINE" and request.payment_gateway not in (None, GATEWAY):
        raise InvalidOperation(f"payment_gateway {request.payment_gateway} is not connected; use stripe")
    if method == "PAYMENT_LINK" and not request.success_url:
        raise ValidationFailed(
            "invalid request: success_url: is required for PAYMENT_LINK payments",
            {"errors": [{"field": "success_url", "message": "is required for PAYMENT_LINK payments"}]},
        )
    if method == "OFFLINE":
        return _offline(scope, request, at)
    invoice = _destination(scope, request)
    _refuse_if_held(scope, invoice, at, method)
    edge = stripe_edge.require(scope)
    with stripe_edge.translated("prepare the payment"):
        stripe_customer = stripe_sync.stripe_customer(scope, invoice["customer_id"])
    gateway = {"payment_gateway": GATEWAY, "gateway_metadata": {"stripe_customer_id": stripe_customer}}
    if method == "CARD":
        with stripe_edge.translated("find the card to charge"):
            method_id = _card_for(edge.client, invoice["customer_id"], stripe_customer, request.payment_method_id)
        record = _new(scope, request, invoice, at, payment_status="PROCESSING", **gateway)
        record["payment_method_id"] = method_id
        payment, created = _insert_claiming(scope, request, record, invoice, at, collection.CARD_LEASE)
        return _charge(scope, payment) if created else payment
    record = _new(scope, request, invoice, at, payment_status="PENDING", **gateway)
    payment, created = _insert_claiming(scope, request, record, invoice, at, LINK_LEASE)
    return _link(scope, payment) if created else payment


def _refuse_if_held(scope: Scope, invoice: dict[str, Any], at: datetime, method: str) -> None:
    """CARD and PAYMENT_LINK collect only an invoice nobody else is collecting (one collector at a time)."""
    holder = collection.holder(invoice, at)
    if holder == STRIPE:
        link = mappings.find(scope, "invoice", invoice["id"], "stripe")
        where = f" (Stripe invoice {link['provider_entity_id']})" if link else ""
        raise Conflict(
            f"invoice {invoice['id']} is collected by Stripe{where}: pay it on its hosted invoice page or let Stripe "
            f"charge the default card; a {method} payment here could take the money twice",
            {
                "invoice_id": invoice["id"],
                "collector": STRIPE,
                **({"stripe_invoice_id": link["provider_entity_id"]} if link else {}),
            },
        )
    if holder is not None:
        raise Conflict(
            f"payment {holder} is collecting invoice {invoice['id']}: wait for it to succeed, fail or expire",
            {"invoice_id": invoice["id"], "payment_id": holder},
        )


def _insert_claiming(
    scope: Scope,
    request: PaymentCreate,
    record: dict[str, Any],
    invoice: dict[str, Any],
    at: datetime,
    lease: timedelta,
) -> tuple[dict[str, Any], bool]:
    """Write the payment and make it the invoice's collector in one transaction (409 when someone else won)."""
    claim = collection.claim_op(scope, invoice, payment_collector(record["id"]), at, at + lease)
    try:
        return _insert(scope, request, record, [claim])
    except ConditionFailed:
        current = invoices.get(scope, invoice["id"])
        _refuse_if_held(scope, current, at, request.payment_method_type)
        raise Conflict(
            f"invoice {invoice['id']} changed while the payment was being recorded; retry",
            {"invoice_id": invoice["id"]},
        ) from None


def _resume(scope: Scope, payment: dict[str, Any]) -> dict[str, Any]:
    """Finish a payment whose Stripe call did not complete (same Stripe idempotency key: no second object)."""
    method, status = payment["payment_method_type"], payment["payment_status"]
    if method == "CARD" and status == "PROCESSING" and not payment.get("gateway_payment_id"):
        return _charge(scope, payment)
    if method == "PAYMENT_LINK" and status == "PENDING" and not payment.get("payment_url"):
        return _link(scope, payment)
    return payment


# ---------------------------------------------------------------------------------------------- OFFLINE


def _offline(scope: Scope, request: PaymentCreate, at: datetime) -> dict[str, Any]:
    for _ in range(WRITE_ATTEMPTS):
        invoice = _destination(scope, request)
        holder = collection.holder(invoice, at)
        if holder == STRIPE:
            collection.mirror_to_stripe(scope, invoice, Decimal(request.amount), "an offline payment")
        elif holder is not None:
            raise Conflict(
                f"payment {holder} is collecting invoice {invoice['id']}: wait for it to succeed, fail or expire",
                {"invoice_id": invoice["id"], "payment_id": holder},
            )
        record = _new(scope, request, invoice, at, payment_status="SUCCEEDED", succeeded_at=iso(at))
        applied = _applied(invoice, request.amount, at)
        ops = [invoice_put_op(scope, invoice, applied)] if applied else []
        try:
            payment, created = _insert(scope, request, record, ops)
        except ConditionFailed:
            continue  # the invoice changed since it was read: validate again against the new amounts
        if created:
            _paid_metrics(applied)
        return payment
    raise VersionConflict(f"invoice {request.destination_id} kept changing; retry")


# ---------------------------------------------------------------------------------------------- CARD


def _card_for(client: Any, customer_id: str, stripe_customer: str, requested: str | None) -> str:
    """The payment method to charge: the requested one (it must be the customer's), else the default."""
    setup_hint = (
        f"run the card-setup flow first (POST /payments/customers/{customer_id}/setup/intent), "
        "or collect this payment with payment_method_type PAYMENT_LINK"
    )
    if requested:
        InvalidRequestError = stripe_gateway.sdk().InvalidRequestError

        try:
            method = client.v1.payment_methods.retrieve(requested)
        except InvalidRequestError:
            raise ValidationFailed(
                f"payment method {requested} was not found", {"field": "payment_method_id"}
            ) from None
        if getattr(method, "customer", None) != stripe_customer:
            raise InvalidOperation(
                f"payment method {requested} is not saved for customer {customer_id}; {setup_hint}",
                {"field": "payment_method_id", "customer_id": customer_id},
            )
        return requested
    found = client.v1.customers.retrieve(stripe_customer)
    settings = getattr(found, "invoice_settings", None)
    default = getattr(settings, "default_payment_method", None) if settings else None
    if not default:
        raise InvalidOperation(
            f"customer {customer_id} has no saved payment method: {setup_hint}",
            {"customer_id": customer_id, "setup_intent_path": f"/payments/customers/{customer_id}/setup/intent"},
        )
    return str(getattr(default, "id", default))


def _gateway_metadata(payment: dict[str, Any], purpose: str) -> dict[str, str]:
    return {
        **(payment.get("metadata") or {}),
        "flexprice_payment_id": payment["id"],
        "flexprice_invoice_id": payment["destination_id"],
        "flexprice_customer_id": payment["customer_id"],
        "flexprice_environment_id": payment["environment_id"],
        "flexprice_purpose": purpose,
        "flexprice_set_default": "true" if payment.get("save_card_and_make_default") else "false",
    }


def _description(payment: dict[str, Any]) -> str:
    return f"Invoice {payment.get('invoice_number') or payment['destination_id']}"


def _client(scope: Scope) -> Any:
    return stripe_edge.require(scope).client


def _charge(scope: Scope, payment: dict[str, Any]) -> dict[str, Any]:
    sdk = stripe_gateway.sdk()
    CardError, InvalidRequestError, StripeError = sdk.CardError, sdk.InvalidRequestError, sdk.StripeError

    client = _client(scope)
    stripe_customer = payment["gateway_metadata"]["stripe_customer_id"]
    params = {
        "amount": to_minor_units(Decimal(payment["amount"]), payment["currency"]),
        "currency": payment["currency"],
        "customer": stripe_customer,
        "payment_method": payment["payment_method_id"],
        "confirm": True,
        "off_session": True,
        "description": _description(payment),
        "metadata": _gateway_metadata(payment, "payment"),
    }
    key = stripe_gateway.idempotency_key("payment.card", payment["id"])
    try:
        intent = client.v1.payment_intents.create(params, stripe_gateway.options(key))
    except CardError as err:
        pi = getattr(err.error, "payment_intent", None) if err.error else None
        message = err.user_message or str(err)
        _settle(scope, payment["id"], "FAILED", utcnow(), message=message, gateway_payment_id=_ref(pi))
        return repo().get(scope, payment["id"])
    except InvalidRequestError as err:
        _settle(scope, payment["id"], "FAILED", utcnow(), message=err.user_message or str(err))
        return repo().get(scope, payment["id"])
    except StripeError as err:
        logger.warning("card payment not confirmed by Stripe", extra={"payment_id": payment["id"], "error": str(err)})
        refused = stripe_edge.translate(err, "charge the card")
        if not isinstance(refused, ServiceUnavailable):
            _settle(scope, payment["id"], "FAILED", utcnow(), message=refused.message)
            raise refused from None
        raise ServiceUnavailable(
            f"Stripe did not confirm payment {payment['id']}; it stays PROCESSING: retry with the same "
            "idempotency_key to resume it",
            {"payment_id": payment["id"], "idempotency_key": payment["idempotency_key"], "retry_after": 1},
        ) from None
    if intent.status == "succeeded":
        _settle(scope, payment["id"], "SUCCEEDED", utcnow(), gateway_payment_id=intent.id)
    elif intent.status in ("requires_payment_method", "requires_action", "canceled"):
        error = getattr(intent, "last_payment_error", None)
        message = getattr(error, "message", None) or f"the payment needs action from the payer ({intent.status})"
        _settle(scope, payment["id"], "FAILED", utcnow(), message=message, gateway_payment_id=intent.id)
    else:  # processing: the payment_intent webhooks finish it
        _patch(scope, payment["id"], gateway_payment_id=intent.id)
    return repo().get(scope, payment["id"])


def _ref(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    found = getattr(value, "id", None) or (value.get("id") if isinstance(value, dict) else None)
    return str(found) if found else None


# ---------------------------------------------------------------------------------------------- PAYMENT_LINK


def _link(scope: Scope, payment: dict[str, Any]) -> dict[str, Any]:
    client = _client(scope)
    metadata = _gateway_metadata(payment, "payment")
    intent_data: dict[str, Any] = {"metadata": metadata, "description": _description(payment)}
    if payment.get("save_card_and_make_default"):
        intent_data["setup_future_usage"] = "off_session"
    params = {
        "mode": "payment",
        "customer": payment["gateway_metadata"]["stripe_customer_id"],
        "payment_method_types": ["card"],
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": payment["currency"],
                    "unit_amount": to_minor_units(Decimal(payment["amount"]), payment["currency"]),
                    "product_data": {"name": _description(payment)},
                },
            }
        ],
        "success_url": payment["success_url"],
        "cancel_url": payment.get("cancel_url") or payment["success_url"],
        "metadata": metadata,
        "payment_intent_data": intent_data,
    }
    key = stripe_gateway.idempotency_key("payment.link", payment["id"])
    StripeError = stripe_gateway.sdk().StripeError

    try:
        session = client.v1.checkout.sessions.create(params, stripe_gateway.options(key))
    except StripeError as err:
        logger.warning("payment link not created", extra={"payment_id": payment["id"], "error": str(err)})
        refused = stripe_edge.translate(err, "create the payment page")
        if not isinstance(refused, ServiceUnavailable):
            _settle(scope, payment["id"], "FAILED", utcnow(), message=refused.message)
            raise refused from None
        raise ServiceUnavailable(
            f"Stripe did not create the payment page of payment {payment['id']}: retry with the same "
            "idempotency_key to resume it",
            {"payment_id": payment["id"], "idempotency_key": payment["idempotency_key"], "retry_after": 1},
        ) from None
    return _patch(
        scope,
        payment["id"],
        payment_url=session.url,
        gateway_tracking_id=session.id,
        gateway_payment_id=_ref(session.payment_intent),
        gateway_metadata={**payment["gateway_metadata"], "checkout_session_id": session.id},
    )


# ---------------------------------------------------------------------------------------------- settling


def _patch(scope: Scope, payment_id: str, **fields: Any) -> dict[str, Any]:
    """Record gateway references on a payment (never its status), retried on concurrent changes."""
    for _ in range(WRITE_ATTEMPTS):
        current = repo().get(scope, payment_id)
        record = {
            **current,
            **{k: v for k, v in fields.items() if v is not None and not current.get(k)},
            "updated_at": iso(utcnow()),
            "version": int(current["version"]) + 1,
        }
        if "gateway_metadata" in fields:
            record["gateway_metadata"] = {**(current.get("gateway_metadata") or {}), **fields["gateway_metadata"]}
        if "error_message" in fields:
            record["error_message"] = fields["error_message"]
        try:
            return repo().replace(scope, record, int(current["version"]), indexes=_indexes(scope, record))
        except VersionConflict:
            continue
    raise VersionConflict(f"payment {payment_id} kept changing; retry")


def _applied(invoice: dict[str, Any] | None, amount: Decimal, at: datetime) -> dict[str, Any] | None:
    """The invoice with a payment of ``amount`` added; None when it takes no payment (no longer FINALIZED)."""
    if invoice is None or invoice["invoice_status"] != "FINALIZED":
        return None
    currency = invoice["currency"]
    due = Decimal(invoice["amount_due"])
    paid = round_minor(Decimal(invoice.get("amount_paid") or 0) + amount, currency)
    status = "OVERPAID" if paid > due else "SUCCEEDED" if paid == due else "PENDING"
    old = invoice["payment_status"]
    if status not in invoices.TRANSITIONS.get(old, frozenset()):
        status = old
    record = {
        **invoice,
        "amount_paid": paid,
        "amount_remaining": round_minor(max(due - paid, Decimal(0)), currency),
        "payment_status": status,
        "updated_at": iso(at),
        "version": int(invoice["version"]) + 1,
    }
    if status in PAID:
        record["paid_at"] = invoice.get("paid_at") or iso(at)
    return record


def _failed(invoice: dict[str, Any] | None, at: datetime) -> dict[str, Any] | None:
    """The invoice marked FAILED (visible as such) when it was waiting for this money; None otherwise."""
    if invoice is None or invoice["invoice_status"] != "FINALIZED" or invoice["payment_status"] != "PENDING":
        return None
    return {**invoice, "payment_status": "FAILED", "updated_at": iso(at), "version": int(invoice["version"]) + 1}


def _paid_metrics(invoice: dict[str, Any] | None) -> None:
    metrics.add_metric(name="PaymentSucceeded", unit="Count", value=1)
    if invoice is not None and invoice["payment_status"] in PAID:
        metrics.add_metric(name="InvoicePaid", unit="Count", value=1)


def _settle(
    scope: Scope,
    payment_id: str,
    outcome: str,
    at: datetime,
    *,
    message: str | None = None,
    gateway_payment_id: str | None = None,
    payment_method_id: str | None = None,
) -> str:
    """Move a payment to SUCCEEDED or FAILED and apply it to its invoice, in one transaction, once."""
    payments = repo()
    for _ in range(WRITE_ATTEMPTS):
        current = payments.get(scope, payment_id)
        status = current["payment_status"]
        if status == "SUCCEEDED":
            return "already_succeeded"  # status only moves forward
        if status == outcome:
            return f"already_{outcome.lower()}"
        record = {
            **current,
            "payment_status": outcome,
            "gateway_payment_id": current.get("gateway_payment_id") or gateway_payment_id,
            "payment_method_id": current.get("payment_method_id") or payment_method_id,
            "updated_at": iso(at),
            "version": int(current["version"]) + 1,
        }
        invoice = invoice_keys.invoices().find(scope, current["destination_id"])
        if outcome == "SUCCEEDED":
            record["succeeded_at"] = iso(at)
            record["error_message"] = None
            changed = _applied(invoice, Decimal(current["amount"]), at)
        else:
            record["failed_at"] = iso(at)
            record["error_message"] = message or "the payment failed"
            changed = _failed(invoice, at)
        ops = [
            payments.table.put_op(
                payments.item(scope, record, _indexes(scope, record)),
                condition="attribute_exists(PK) AND version = :v",
                values={":v": int(current["version"])},
            )
        ]
        me = payment_collector(payment_id)
        if invoice is not None and invoice.get("collector") == me:
            # The payment has ended: it no longer holds the invoice (the Stripe sync may go on).
            base = changed if changed is not None else {**invoice, "version": int(invoice["version"]) + 1}
            changed = collection.released(base, me)
        if changed is not None and invoice is not None:
            ops.append(invoice_put_op(scope, invoice, changed))
        try:
            wiring.entities().transact(ops)
        except ConditionFailed:
            continue
        if outcome == "SUCCEEDED":
            _paid_metrics(changed)
            if invoice is not None and changed is None:
                logger.warning(
                    "payment succeeded for an invoice that no longer takes payments",
                    extra={"payment_id": payment_id, "invoice_id": current["destination_id"]},
                )
        else:
            metrics.add_metric(name="PaymentFailed", unit="Count", value=1)
        return outcome.lower()
    raise VersionConflict(f"payment {payment_id} kept changing; retry")


# ---------------------------------------------------------------------------------------------- webhooks


def gateway_succeeded(
    scope: Scope,
    payment_id: str,
    *,
    gateway_payment_id: str | None,
    payment_method_id: str | None,
    amount_minor: int | None,
    currency: str | None,
    at: datetime,
) -> str:
    """Stripe reports a payment of ours paid (``checkout.session.completed``, ``payment_intent.succeeded``)."""
    payment = repo().find(scope, payment_id)
    if payment is None:
        raise not_found("payment", payment_id)  # retried, then dead-lettered
    if currency and currency.lower() != payment["currency"]:
        logger.warning("stripe payment currency differs from ours", extra={"payment_id": payment_id})
        return "rejected_currency"
    if amount_minor is None or int(amount_minor) <= 0:
        logger.warning("stripe payment event without a positive amount", extra={"payment_id": payment_id})
        return "rejected_amount"
    if from_minor_units(int(amount_minor), payment["currency"]) != Decimal(payment["amount"]):
        logger.warning("stripe payment amount differs from ours", extra={"payment_id": payment_id})
        return "rejected_amount"
    return _settle(
        scope, payment_id, "SUCCEEDED", at, gateway_payment_id=gateway_payment_id, payment_method_id=payment_method_id
    )


def gateway_failed(scope: Scope, payment_id: str, *, message: str | None, gateway_payment_id: str | None) -> str:
    """Stripe reports an attempt declined. A payment page stays open for another card: only the message is kept."""
    payment = repo().find(scope, payment_id)
    if payment is None:
        raise not_found("payment", payment_id)
    if payment["payment_method_type"] == "PAYMENT_LINK":
        if payment["payment_status"] != "PENDING":
            return f"ignored_{str(payment['payment_status']).lower()}"
        _patch(scope, payment_id, error_message=message)
        return "attempt_failed"
    return _settle(scope, payment_id, "FAILED", utcnow(), message=message, gateway_payment_id=gateway_payment_id)


def gateway_expired(scope: Scope, payment_id: str) -> str:
    """Stripe reports a payment page expired unpaid (``checkout.session.expired``): the payment failed."""
    payment = repo().find(scope, payment_id)
    if payment is None:
        raise not_found("payment", payment_id)
    if payment["payment_status"] not in ("PENDING", "PROCESSING"):
        return f"ignored_{str(payment['payment_status']).lower()}"
    return _settle(scope, payment_id, "FAILED", utcnow(), message="the payment page expired before it was paid")
