"""Provider connections: one active Stripe connection per environment, secrets encrypted with KMS.

The record holds ``secret_ciphertext`` (KMS, bound to tenant/environment/connection) and
``secret_hints``; clear secrets are decrypted only by the functions that call Stripe (``stripe_credentials``).

A secret key is checked with Stripe before anything is written (``stripe_edge.check_key``: one authenticated
``GET /v1/balance``): a key Stripe rejects is refused with 400 and nothing is stored; Stripe unreachable is a 503 with
``Retry-After``. The key's mode (``test`` or ``live``, as Stripe reports it) is recorded as ``livemode``.
"""

from __future__ import annotations

from typing import Any

from billing import stripe_edge
from billing.errors import NotFound
from billing.ids import new_id
from billing.observability import logger, metrics
from billing.schemas.connections import (
    ConnectionCreate,
    ConnectionFilter,
    ConnectionUpdate,
    secret_hints,
)
from billing.scope import Scope
from billing.services import webhooks
from billing.store import secrets
from billing.store.entities import ACTIVE, ARCHIVED, Entities
from billing.timeutil import iso, utcnow

UNIQUE_FIELD = stripe_edge.CONNECTION_UNIQUE_FIELD


def _repo() -> Entities:
    from billing import wiring

    return Entities(wiring.entities(), "connection", "connection")


def create(scope: Scope, request: ConnectionCreate, actor: str = "api") -> dict[str, Any]:
    mode = stripe_edge.check_key(request.encrypted_secret_data.secret_key)
    now = iso(utcnow())
    connection_id = new_id("connection")
    record: dict[str, Any] = {
        "id": connection_id,
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "name": request.name,
        "provider_type": request.provider_type,
        "sync_config": request.sync_config.model_dump(),
        "metadata": request.metadata or {},
        "secret_ciphertext": secrets.encrypt(
            scope, connection_id, request.encrypted_secret_data.model_dump(exclude_none=True)
        ),
        "secret_hints": secret_hints(request.encrypted_secret_data),
        "livemode": mode == "live",
        "status": ACTIVE,
        "created_at": now,
        "updated_at": now,
        "created_by": actor,
        "updated_by": actor,
        "version": 1,
    }
    # The claim makes "one active connection per provider and environment" atomic.
    created = _repo().create(
        scope,
        record,
        unique={UNIQUE_FIELD: request.provider_type},
        extra_ops=[webhooks.connection_index_op(_repo().table, scope, connection_id)],
    )
    logger.info("connection created", extra={"connection_id": connection_id, "provider": request.provider_type})
    metrics.add_metric(name="ConnectionCreated", unit="Count", value=1)
    return created


def get(scope: Scope, connection_id: str) -> dict[str, Any]:
    return _repo().get(scope, connection_id)


def search(scope: Scope, criteria: ConnectionFilter) -> list[dict[str, Any]]:
    return criteria.arrange([c for c in _repo().list(scope) if criteria.keep(c)])


def active(scope: Scope, provider: str = "stripe") -> dict[str, Any] | None:
    """The active connection of a provider in this environment, if any."""
    return stripe_edge.active_connection(scope, provider)


def stripe_credentials(scope: Scope, connection: dict[str, Any]) -> dict[str, Any]:
    """Clear Stripe secrets of a connection. Never log or return what this gives."""
    return stripe_edge.credentials(scope, connection)


def update(scope: Scope, connection_id: str, request: ConnectionUpdate, actor: str = "api") -> dict[str, Any]:
    repo = _repo()
    current = repo.get(scope, connection_id)
    if current["status"] != ACTIVE:
        raise NotFound(f"connection {connection_id} is archived", {"entity": "connection", "id": connection_id})
    record = dict(current)
    if request.name is not None:
        record["name"] = request.name
    if request.metadata is not None:
        record["metadata"] = request.metadata
    if request.sync_config is not None:
        record["sync_config"] = request.sync_config.model_dump()
    if request.encrypted_secret_data is not None:
        record["livemode"] = stripe_edge.check_key(request.encrypted_secret_data.secret_key) == "live"
        record["secret_ciphertext"] = secrets.encrypt(
            scope, connection_id, request.encrypted_secret_data.model_dump(exclude_none=True)
        )
        record["secret_hints"] = secret_hints(request.encrypted_secret_data)
    record.update(updated_at=iso(utcnow()), updated_by=actor, version=int(current["version"]) + 1)
    return repo.replace(scope, record, int(current["version"]))


def archive(scope: Scope, connection_id: str, actor: str = "api") -> dict[str, Any]:
    repo = _repo()
    current = repo.get(scope, connection_id)
    if current["status"] == ARCHIVED:
        return current
    record = {
        **current,
        "status": ARCHIVED,
        "updated_at": iso(utcnow()),
        "updated_by": actor,
        "version": int(current["version"]) + 1,
    }
    release = repo.release_op(scope, UNIQUE_FIELD, current["provider_type"], connection_id)
    return repo.replace(scope, record, int(current["version"]), extra_ops=[release])
