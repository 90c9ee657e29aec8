"""Tenants, environments and API keys. A key is stored only as its SHA-256 hash.

Items on the entities table:

- ``PK = tenant#<tenant_id>``, ``SK = tenant``: the tenant.
- ``PK = tenant#<tenant_id>``, ``SK = env#<environment_id>``: an environment of the tenant.
- ``PK = apikey#<sha256>``, ``SK = apikey``: a key;
  ``GSI1PK = tenant#<tenant_id>#apikeys`` lists a tenant's keys,
  ``GSI2PK = apikeyid#<key_id>`` finds a key by its id (to revoke it).
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING, Any, Protocol

from billing.errors import NotFound, ValidationFailed
from billing.ids import new_id
from billing.timeutil import iso, utcnow

if TYPE_CHECKING:
    from billing.store.dynamo import Table


# The authorizer's context when it could not read the key (storage faults): the function checks the key itself
# (billing.http.recheck_key). API Gateway caches the authorizer's answer per key, so a refusal there would outlive
# the fault and an error would be its bare 500; this costs the key one extra read per request until the cached
# answer expires (docs/decisions.md D2).
AUTH_UNAVAILABLE = "auth_unavailable"


class KeyReader(Protocol):
    def get(self, pk: str, sk: str, *, consistent: bool = True) -> dict[str, Any] | None: ...


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in ("PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK")}


KEY_PREFIX = "bk_"
ACTIVE = "active"
REVOKED = "revoked"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def create_tenant(table: Table, name: str, tenant_id: str | None = None) -> dict[str, Any]:
    tenant_id = tenant_id or new_id("tenant")
    record = {"id": tenant_id, "name": name, "created_at": iso(utcnow())}
    table.put({"PK": f"tenant#{tenant_id}", "SK": "tenant", **record}, condition="attribute_not_exists(PK)")
    return record


def create_environment(table: Table, tenant_id: str, name: str, environment_id: str | None = None) -> dict[str, Any]:
    if table.get(f"tenant#{tenant_id}", "tenant") is None:
        raise NotFound(f"tenant {tenant_id} was not found")
    environment_id = environment_id or new_id("environment")
    record = {"id": environment_id, "tenant_id": tenant_id, "name": name, "created_at": iso(utcnow())}
    table.put(
        {"PK": f"tenant#{tenant_id}", "SK": f"env#{environment_id}", **record},
        condition="attribute_not_exists(PK)",
    )
    return record


def create_key(
    table: Table,
    tenant_id: str,
    environment_id: str,
    name: str = "default",
    key: str | None = None,
    rate_limit: int | None = None,
) -> tuple[dict[str, Any], str]:
    """Store a new key's hash and return (record, clear key). The clear key is never stored.

    ``rate_limit`` overrides the deployment's requests-per-window limit for this key (0: unlimited).
    """
    if rate_limit is not None and rate_limit < 0:
        raise ValidationFailed("rate_limit must be 0 (unlimited) or a positive number of requests per window")
    if table.get(f"tenant#{tenant_id}", f"env#{environment_id}") is None:
        raise NotFound(f"environment {environment_id} of tenant {tenant_id} was not found")
    clear = key or generate_key()
    if len(clear) < 16:
        raise ValidationFailed("an API key must be at least 16 characters")
    digest = hash_key(clear)
    record: dict[str, Any] = {
        "key_id": new_id("api_key"),
        "tenant_id": tenant_id,
        "environment_id": environment_id,
        "name": name,
        "status": ACTIVE,
        "hint": clear[:6] + "…" + clear[-4:],
        "created_at": iso(utcnow()),
    }
    if rate_limit is not None:
        record["rate_limit"] = rate_limit
    table.put(
        {
            "PK": f"apikey#{digest}",
            "SK": "apikey",
            "GSI1PK": f"tenant#{tenant_id}#apikeys",
            "GSI1SK": record["key_id"],
            "GSI2PK": f"apikeyid#{record['key_id']}",
            "GSI2SK": "apikey",
            **record,
        },
        condition="attribute_not_exists(PK)",
    )
    return record, clear


def rotate_key(table: Table, key_id: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A new key for the same environment, name and rate limit as an active key: (new record, clear key, old record).

    The old key stays valid, so clients can move over without an outage; it is marked ``replaced_by`` the new one and
    ends when it is revoked (``revoke_key``). Keys are never rotated in place: each has its own id and hint.
    """
    found = table.query(f"apikeyid#{key_id}", index="GSI2")
    if not found:
        raise NotFound(f"API key {key_id} was not found")
    old = found[0]
    if old.get("status") != ACTIVE:
        raise ValidationFailed(f"API key {key_id} is {old.get('status')}; only an active key can be rotated")
    rate_limit = old.get("rate_limit")
    record, clear = create_key(
        table,
        str(old["tenant_id"]),
        str(old["environment_id"]),
        str(old.get("name") or "default"),
        rate_limit=None if rate_limit is None else int(rate_limit),
    )
    updated = table.update(
        old["PK"],
        old["SK"],
        "SET replaced_by = :n, rotated_at = :t",
        values={":n": record["key_id"], ":t": iso(utcnow())},
    )
    return record, clear, _public(updated)


def list_keys(table: Table, tenant_id: str) -> list[dict[str, Any]]:
    return [_public(i) for i in table.query(f"tenant#{tenant_id}#apikeys", index="GSI1")]


def revoke_key(table: Table, key_id: str) -> dict[str, Any]:
    found = table.query(f"apikeyid#{key_id}", index="GSI2")
    if not found:
        raise NotFound(f"API key {key_id} was not found")
    item = found[0]
    updated = table.update(
        item["PK"],
        item["SK"],
        "SET #s = :r, revoked_at = :t",
        names={"#s": "status"},
        values={":r": REVOKED, ":t": iso(utcnow())},
    )
    return _public(updated)


def authorize(table: KeyReader, key: str | None) -> dict[str, str]:
    """The authorizer's context for a key: tenant and environment, or the reason it is refused.

    Surrounding whitespace is not part of a key (HTTP trims it from header values; clients and copy-paste add it).
    """
    key = (key or "").strip()
    if not key:
        return {"auth_error": "a valid x-api-key header is required"}
    item = table.get(f"apikey#{hash_key(key)}", "apikey", consistent=False)
    if item is None:
        return {"auth_error": "the API key is not valid"}
    if item.get("status") != ACTIVE:
        return {"auth_error": "the API key has been revoked"}
    context: dict[str, str] = {
        "tenant_id": item["tenant_id"],
        "environment_id": item["environment_id"],
        "key_id": item["key_id"],
    }
    if item.get("rate_limit") is not None:
        context["rate_limit"] = str(int(item["rate_limit"]))
    return context
