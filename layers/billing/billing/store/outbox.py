"""The outbox of outbound webhooks and the records of their deliveries.

- message ``OutboxTable``: ``PK=<tenant>#<env>#msg#<shard 0..3>``, ``SK=<msg id>`` (a time-ordered ULID):
  ``event_type``, ``kind`` and ``entity`` (the entity as written, keys stripped), ``created_at``, ``expires_at``
  (TTL). Written in the same transaction as the change it reports, so a message exists exactly when the change
  does. The table's stream (new images, inserts only) feeds the relay. An entity too large to be copied whole
  is referenced instead (``entity_ref``) and read when the message is delivered. The shard spreads one
  environment's writes over four partitions; a time range is four Queries.
- endpoint ``EntitiesTable``: ``PK=<p>#webhook_endpoint``, ``SK=<ep id>`` (an entity; its signing secret is
  KMS-encrypted in ``secret_ciphertext``).
- delivery ``EntitiesTable``: ``PK=<p>#webhook_delivery#<ep id>``, ``SK=<msg id>``: one per endpoint and message,
  with ``status`` (pending, succeeded, failed, skipped), ``attempts``, ``generation`` (a replay starts the next
  one), ``next_attempt_at``, the last ``response_status``/``error``, and ``expires_at`` (TTL).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from billing import wiring
from billing.errors import PayloadTooLarge
from billing.ids import ulid
from billing.scope import Scope
from billing.store.dynamo import Table
from billing.store.entities import Entities, strip_keys

SHARDS = 4
_MIN_ULID_TAIL = "0" * 16
_MAX_ULID_TAIL = "Z" * 16
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def table() -> Table:
    return wiring.outbox()


def endpoints() -> Entities:
    return Entities(wiring.entities(), "webhook_endpoint", "webhook endpoint")


def shard_of(message_id: str) -> int:
    return int.from_bytes(hashlib.sha256(message_id.encode()).digest()[:4], "big") % SHARDS


def message_pk(scope: Scope, shard: int) -> str:
    return f"{scope.prefix}#msg#{shard}"


def delivery_pk(scope: Scope, endpoint_id: str) -> str:
    return f"{scope.prefix}#webhook_delivery#{endpoint_id}"


def _time_part(at: datetime) -> str:
    value = int(at.timestamp() * 1000)
    chars = []
    for _ in range(10):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def message_op(scope: Scope, message: Mapping[str, Any]) -> dict[str, Any]:
    """The transaction op that writes one message; a too-large entity is replaced by a reference to it."""
    item = {
        "PK": message_pk(scope, shard_of(message["id"])),
        "SK": message["id"],
        **message,
    }
    try:
        return table().put_op(item, condition="attribute_not_exists(PK)")
    except PayloadTooLarge:
        entity = message.get("entity") or {}
        ref = {"kind": message["kind"], "id": entity.get("id")}
        slim = {k: v for k, v in item.items() if k != "entity"}
        return table().put_op({**slim, "entity_ref": ref}, condition="attribute_not_exists(PK)")


def new_message_id() -> str:
    return f"msg_{ulid()}"


def get_message(scope: Scope, message_id: str) -> dict[str, Any] | None:
    item = table().get(message_pk(scope, shard_of(message_id)), message_id)
    return strip_keys(item) if item else None


def messages_between(scope: Scope, start: datetime, end: datetime, limit: int) -> list[dict[str, Any]]:
    """Messages created in ``[start, end]``, oldest first, at most ``limit`` (one Query per shard)."""
    low, high = f"msg_{_time_part(start)}{_MIN_ULID_TAIL}", f"msg_{_time_part(end)}{_MAX_ULID_TAIL}"
    found: list[dict[str, Any]] = []
    for shard in range(SHARDS):
        pages: Iterator[dict[str, Any]] = table().query_pages(
            message_pk(scope, shard), sk_between=(low, high), limit=limit
        )
        found.extend(strip_keys(i) for i in pages)
    found.sort(key=lambda m: str(m["id"]))
    return found[:limit]


# -- deliveries ----------------------------------------------------------------------------------------------


def delivery_key(scope: Scope, endpoint_id: str, message_id: str) -> tuple[str, str]:
    return delivery_pk(scope, endpoint_id), message_id


def get_delivery(scope: Scope, endpoint_id: str, message_id: str) -> dict[str, Any] | None:
    item = wiring.entities().get(*delivery_key(scope, endpoint_id, message_id))
    return strip_keys(item) if item else None


def deliveries(scope: Scope, endpoint_id: str, limit: int) -> list[dict[str, Any]]:
    """An endpoint's deliveries, newest message first."""
    pages = wiring.entities().query_pages(delivery_pk(scope, endpoint_id), forward=False, limit=limit)
    return [strip_keys(i) for i in pages]
