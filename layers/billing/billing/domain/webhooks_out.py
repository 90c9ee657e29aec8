"""Outbound webhooks, the pure part: event names, which events a change implies, signatures, retry times, targets.

Signatures follow the Standard Webhooks specification (the scheme Svix uses): the signed content is
``<webhook-id>.<webhook-timestamp>.<body>``, the signature is HMAC-SHA256 with the secret's bytes, sent as
``webhook-signature: v1,<base64>``; the secret is shown to the operator as ``whsec_<base64 of its bytes>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

# Flexprice's names (its /webhook-events/* entries) for what this product does today.
INVOICE_DRAFTED = "invoice.create.drafted"
INVOICE_FINALIZED = "invoice.update.finalized"
INVOICE_PAYMENT = "invoice.update.payment"
INVOICE_VOIDED = "invoice.update.voided"
PAYMENT_SUCCESS = "payment.success"
PAYMENT_FAILED = "payment.failed"
SUBSCRIPTION_CREATED = "subscription.created"
SUBSCRIPTION_UPDATED = "subscription.updated"
SUBSCRIPTION_CANCELLED = "subscription.cancelled"
CUSTOMER_CREATED = "customer.created"
CUSTOMER_UPDATED = "customer.updated"
CUSTOMER_DELETED = "customer.deleted"
# Sent only by the test-send of one endpoint.
TEST_EVENT = "webhook.test"

EVENT_TYPES: tuple[str, ...] = (
    INVOICE_DRAFTED,
    INVOICE_FINALIZED,
    INVOICE_PAYMENT,
    INVOICE_VOIDED,
    PAYMENT_SUCCESS,
    PAYMENT_FAILED,
    SUBSCRIPTION_CREATED,
    SUBSCRIPTION_UPDATED,
    SUBSCRIPTION_CANCELLED,
    CUSTOMER_CREATED,
    CUSTOMER_UPDATED,
    CUSTOMER_DELETED,
)

# The payload key of each entity kind (Flexprice: {"event_type": ..., "<kind>": {...}}).
KINDS = ("invoice", "payment", "subscription", "customer")

# Seconds to wait after failed attempt n (1-based) before attempt n + 1: 8 attempts over 27.6 hours.
RETRY_SCHEDULE: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
# SQS delays a message at most this long; longer waits hop through the queue (docs/webhooks-out.md).
MAX_SQS_DELAY = 900

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24


# -- which events a change implies ---------------------------------------------------------------------------


def invoice_events(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """The invoice events a write from ``before`` (None: a new invoice) to ``after`` implies, in order."""
    old_status = before.get("invoice_status") if before is not None else None
    new_status = after.get("invoice_status")
    out = []
    if before is None and new_status == "DRAFT":
        out.append(INVOICE_DRAFTED)
    if new_status == "FINALIZED" and old_status != "FINALIZED":
        out.append(INVOICE_FINALIZED)
    if new_status == "VOIDED" and old_status != "VOIDED":
        out.append(INVOICE_VOIDED)
    if before is not None and old_status == new_status == "FINALIZED":
        moved = before.get("payment_status") != after.get("payment_status")
        if moved or _decimal_text(before.get("amount_paid")) != _decimal_text(after.get("amount_paid")):
            out.append(INVOICE_PAYMENT)
    return out


def payment_events(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """``payment.success`` when a payment reaches SUCCEEDED, ``payment.failed`` when it reaches FAILED."""
    old = before.get("payment_status") if before is not None else None
    new = after.get("payment_status")
    if new == old:
        return []
    if new == "SUCCEEDED":
        return [PAYMENT_SUCCESS]
    if new == "FAILED":
        return [PAYMENT_FAILED]
    return []


def subscription_events(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[str]:
    """Created; cancelled when its status becomes cancelled; updated when a cancellation is scheduled."""
    if before is None:
        return [SUBSCRIPTION_CREATED]
    if after.get("subscription_status") == "cancelled" and before.get("subscription_status") != "cancelled":
        return [SUBSCRIPTION_CANCELLED]
    if bool(after.get("cancel_at_period_end")) != bool(before.get("cancel_at_period_end")):
        return [SUBSCRIPTION_UPDATED]
    if after.get("scheduled_cancel_at") != before.get("scheduled_cancel_at"):
        return [SUBSCRIPTION_UPDATED]
    return []


def _decimal_text(value: Any) -> str:
    return "0" if value is None else format(value, "f") if not isinstance(value, str) else value


def subscribed(event_types: Sequence[str], event_type: str) -> bool:
    """An endpoint with no filter takes every event; the test event reaches only the endpoint it was sent to."""
    return event_type == TEST_EVENT or not event_types or event_type in event_types


# -- signatures ----------------------------------------------------------------------------------------------


def secret_text(raw: bytes) -> str:
    return SECRET_PREFIX + base64.b64encode(raw).decode("ascii")


def secret_bytes(text: str) -> bytes:
    body = text[len(SECRET_PREFIX) :] if text.startswith(SECRET_PREFIX) else text
    return base64.b64decode(body)


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256 of id.timestamp.body>``."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }


# -- retries -------------------------------------------------------------------------------------------------


def retry_delay(failed_attempts: int, schedule: Sequence[int] = RETRY_SCHEDULE) -> int | None:
    """Seconds before the next attempt after ``failed_attempts`` failures; None once the schedule is spent."""
    if failed_attempts < 1 or failed_attempts > len(schedule):
        return None
    return int(schedule[failed_attempts - 1])


def queue_delay(remaining_seconds: float) -> int:
    """The SQS delay for a wait of ``remaining_seconds``: the whole wait up to 15 minutes, else one hop of it."""
    return max(0, min(MAX_SQS_DELAY, int(-(-remaining_seconds // 1))))


def succeeded(status: int) -> bool:
    """Standard Webhooks: any 2xx is a success; redirects are not followed and count as failures."""
    return 200 <= status < 300


# -- targets -------------------------------------------------------------------------------------------------


def address_allowed(address: str, *, allow_private: bool) -> bool:
    """A resolved address an outbound call may connect to.

    Deployed, only global unicast addresses: never private (VPC), loopback, link-local (the instance metadata
    service at 169.254.169.254), multicast, reserved or unspecified ones, nor IPv4 mapped into IPv6 around that.
    ``allow_private`` (the local stack) lets loopback and private addresses through.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if allow_private:
        return not (ip.is_multicast or ip.is_unspecified)
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_link_local or ip.is_loopback)
