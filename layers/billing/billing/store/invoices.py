"""Keys and repositories of subscriptions, invoices and the items invoicing keeps beside them.

Item layout (``EntitiesTable``; ``<p>`` is ``<tenant>#<env>``):

- subscription ``PK=<p>#subscription``, ``SK=<subs id>``;
  ``GSI1PK=<p>#customer_subscriptions#<customer id>``, ``GSI1SK=<subs id>`` (a customer's subscriptions);
  ``GSI2PK=due#<shard>``, ``GSI2SK=<current_period_end>#<tenant>#<env>#<subs id>`` while a period is still to be
  invoiced: "subscriptions whose current period ended before T" is one Query per shard (never a Scan). The
  attributes are removed when the subscription has no period left to invoice, so the index holds only live ones.
- invoice ``PK=<p>#invoice``, ``SK=<inv id>``; ``GSI1PK=<p>#customer_invoices#<customer id>``;
  ``GSI2PK=<p>#subscription_invoices#<subs id>``, ``GSI2SK=<period_start>#<inv id>``. A subscription invoice's id
  is derived from (tenant, environment, subscription, period start), so a retry finds the invoice it started.
- invoice number counter ``PK=<p>#counter``, ``SK=invoice_number``, ``value``: incremented in the transaction
  that finalizes an invoice, so numbers are unique and gap-free.
- billed usage ``PK=<p>#billed#<subs id>``, ``SK=<period_start>``: per invoiced period, the usage quantity each
  price billed (``quantities``), updated when late usage of that period is billed.
- outbound sync ``PK=<p>#invoice_sync``, ``SK=<inv id>``, ``status=pending``;
  ``GSI1PK=invoice_sync#pending#<shard>``, ``GSI1SK=<finalized_at>#<tenant>#<env>#<inv id>`` (what the Stripe sync
  worker has still to push).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from billing import wiring
from billing.ids import PREFIXES
from billing.scope import Scope
from billing.store.entities import Entities

DUE_SHARDS = 8
SYNC_SHARDS = 4
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def subscriptions() -> Entities:
    return Entities(wiring.entities(), "subscription", "subscription")


def invoices() -> Entities:
    return Entities(wiring.entities(), "invoice", "invoice")


def key_time(value: datetime) -> str:
    """A fixed-width UTC timestamp that sorts as the instant does (index sort keys)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _shard(text: str, shards: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") % shards


def due_pk(shard: int) -> str:
    return f"due#{shard}"


def due_keys(scope: Scope, subscription_id: str, period_end: datetime) -> dict[str, str]:
    return {
        "GSI2PK": due_pk(_shard(subscription_id, DUE_SHARDS)),
        "GSI2SK": f"{key_time(period_end)}#{scope.tenant_id}#{scope.environment_id}#{subscription_id}",
    }


def customer_subscriptions_key(scope: Scope, customer_id: str) -> str:
    return f"{scope.prefix}#customer_subscriptions#{customer_id}"


def customer_invoices_key(scope: Scope, customer_id: str) -> str:
    return f"{scope.prefix}#customer_invoices#{customer_id}"


def subscription_invoices_key(scope: Scope, subscription_id: str) -> str:
    return f"{scope.prefix}#subscription_invoices#{subscription_id}"


def invoice_indexes(scope: Scope, record: dict[str, object]) -> dict[str, str]:
    out = {"GSI1PK": customer_invoices_key(scope, str(record["customer_id"])), "GSI1SK": str(record["id"])}
    if record.get("subscription_id"):
        out["GSI2PK"] = subscription_invoices_key(scope, str(record["subscription_id"]))
        out["GSI2SK"] = f"{record['period_start']}#{record['id']}"
    return out


def counter_key(scope: Scope) -> tuple[str, str]:
    return f"{scope.prefix}#counter", "invoice_number"


def invoice_payments_key(scope: Scope, invoice_id: str) -> str:
    """GSI1 partition of an invoice's payments (ours and those Stripe collected)."""
    return f"{scope.prefix}#invoice_payments#{invoice_id}"


def billed_pk(scope: Scope, subscription_id: str) -> str:
    return f"{scope.prefix}#billed#{subscription_id}"


def sync_pk(scope: Scope) -> str:
    return f"{scope.prefix}#invoice_sync"


def sync_pending_pk(shard: int) -> str:
    return f"invoice_sync#pending#{shard}"


def sync_keys(scope: Scope, invoice_id: str, finalized_at: str) -> dict[str, str]:
    return {
        "GSI1PK": sync_pending_pk(_shard(invoice_id, SYNC_SHARDS)),
        "GSI1SK": f"{finalized_at}#{scope.tenant_id}#{scope.environment_id}#{invoice_id}",
    }


def invoice_id_for(scope: Scope, subscription_id: str, key: str, at: datetime) -> str:
    """The id of a subscription's invoice for one period (``key``: its start, or ``create``).

    ULID-shaped: 48 bits of ``at`` (milliseconds), then 80 bits of a hash of the scope, subscription and key.
    The same inputs always give the same id, so the draft written by a crashed attempt is found again.
    """
    digest = hashlib.sha256(f"{scope.prefix}|{subscription_id}|{key}".encode()).digest()
    value = (int(at.timestamp() * 1000) << 80) | int.from_bytes(digest[:10], "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return f"{PREFIXES['invoice']}_{''.join(reversed(chars))}"
