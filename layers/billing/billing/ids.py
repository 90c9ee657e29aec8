"""``<prefix>_<ULID>`` identifiers (Crockford base32, time-ordered)."""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

PREFIXES = {
    "feature": "feat",
    "meter": "meter",
    "plan": "plan",
    "price": "price",
    "customer": "cust",
    "subscription": "subs",
    "invoice": "inv",
    "invoice_line": "inv_line",
    "payment": "pay",
    "wallet": "wallet",
    "connection": "conn",
    "entity_mapping": "eim",
    "event": "event",
    "tenant": "tenant",
    "environment": "env",
    "api_key": "key",
}


def ulid(timestamp_ms: int | None = None) -> str:
    ms = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(kind: str) -> str:
    return f"{PREFIXES[kind]}_{ulid()}"
