"""Meters: what usage to count for an event name, and how.

A meter is created only inline with a metered feature (``POST /features``), in the same transaction as the
feature. **Meters are immutable after creation**: there is no update endpoint, and nothing changes a meter's
event name, aggregation, filters or reset rule, so usage already counted under it keeps its meaning. The one
change a meter ever sees is archival (``status: archived``), when the last published feature using it is
archived.

Record (kind ``meter`` on the entities table, ``store.catalog.meters()``; read by usage metering)::

    {id: "meter_<ULID>", tenant_id, environment_id, name, event_name,
     aggregation: {type: "SUM", field: "tokens" | None, multiplier: Decimal | None},
     filters: [{key: "model", values: ["gpt-4o", "o1"]}],   # [] when none
     reset_usage: "BILLING_PERIOD" | "NEVER", status: "published" | "archived",
     created_at, updated_at (RFC 3339 strings), version: 1}

Keys: ``PK = <tenant>#<env>#meter``, ``SK = <meter id>``;
``GSI1PK = <tenant>#<env>#meter_event#<event_name>``, ``GSI1SK = <meter id>`` (meters of an event name).

Reference count: ``PK = <tenant>#<env>#meter_refs``, ``SK = <meter id>``, ``feature_count = N``: how many
published features use the meter. Creating a feature adds one in the feature's transaction; archiving one
subtracts one and archives the meter when it reaches zero. Both touch this item, so DynamoDB serializes them:
a feature can never be created on a meter that is being archived.
"""

from __future__ import annotations

from typing import Any

from billing import wiring
from billing.errors import InvalidOperation, not_found
from billing.ids import new_id
from billing.schemas.meters import MeterCreate, MeterFilter, filters_record
from billing.scope import Scope
from billing.store import catalog
from billing.store.dynamo import serialize
from billing.store.entities import ACTIVE, ARCHIVED, entity_pk, strip_keys

KIND = "meter"
MAX_ID_LENGTH = 255


def event_index_key(scope: Scope, event_name: str) -> str:
    return f"{scope.prefix}#meter_event#{event_name}"


def _refs_key(scope: Scope, meter_id: str) -> dict[str, Any]:
    return {"PK": {"S": f"{scope.prefix}#meter_refs"}, "SK": {"S": meter_id}}


def _meter_key(scope: Scope, meter_id: str) -> dict[str, Any]:
    return {"PK": {"S": entity_pk(scope, KIND)}, "SK": {"S": meter_id}}


# -- reads ------------------------------------------------------------------------------------------
def find(scope: Scope, meter_id: str) -> dict[str, Any] | None:
    if not meter_id or len(meter_id) > MAX_ID_LENGTH:
        return None
    return catalog.meters().find(scope, meter_id)


def get(scope: Scope, meter_id: str) -> dict[str, Any]:
    found = find(scope, meter_id)
    if found is None:
        raise not_found("meter", meter_id)
    return found


def get_many(scope: Scope, meter_ids: list[str]) -> dict[str, dict[str, Any]]:
    wanted = [m for m in meter_ids if m and len(m) <= MAX_ID_LENGTH]
    return catalog.meters().get_many(scope, wanted) if wanted else {}


def search(scope: Scope, criteria: MeterFilter) -> list[dict[str, Any]]:
    return criteria.arrange([m for m in catalog.meters().list(scope) if criteria.keep(m)])


def meters_for_event(scope: Scope, event_name: str) -> list[dict[str, Any]]:
    """The published meters of an event name (one Query on GSI1), oldest first.

    GSI1 is eventually consistent: a meter created a moment ago may take a moment to appear.
    """
    if not event_name or len(event_name) > MAX_ID_LENGTH:
        return []
    items = wiring.entities().query(event_index_key(scope, event_name), index="GSI1")
    return [strip_keys(i) for i in items if i.get("status") == ACTIVE]


# -- writes (operations for the feature's transaction) ------------------------------------------------
def new_record(scope: Scope, request: MeterCreate, default_name: str, now: str) -> dict[str, Any]:
    aggregation = request.aggregation
    return {
        "id": new_id("meter"),
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "name": request.name or default_name,
        "event_name": request.event_name,
        "aggregation": {
            "type": aggregation.type,
            "field": aggregation.field,
            "multiplier": aggregation.multiplier,
        },
        "filters": filters_record(request.filters),
        "reset_usage": request.reset_usage,
        "status": ACTIVE,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }


def create_ops(scope: Scope, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Write a new meter and its reference count (one feature uses it)."""
    repo = catalog.meters()
    indexes = {"GSI1PK": event_index_key(scope, record["event_name"]), "GSI1SK": record["id"]}
    return [
        repo.table.put_op(repo.item(scope, record, indexes), condition="attribute_not_exists(PK)"),
        repo.table.put_op(
            {"PK": f"{scope.prefix}#meter_refs", "SK": record["id"], "feature_count": 1},
            condition="attribute_not_exists(PK)",
        ),
    ]


def usable(scope: Scope, meter_id: str) -> dict[str, Any]:
    """The meter a new feature may reference: it exists in this environment and is published."""
    meter = get(scope, meter_id)
    if meter.get("status") != ACTIVE:
        raise InvalidOperation(
            f"meter {meter_id} is archived; a feature can only use a published meter",
            {"entity": "meter", "id": meter_id, "field": "meter_id"},
        )
    return meter


def reference_ops(scope: Scope, meter_id: str) -> list[dict[str, Any]]:
    """A new feature uses an existing meter: the meter must still be published; the count goes up."""
    table = catalog.meters().table
    return [
        {
            "ConditionCheck": {
                "TableName": table.name,
                "Key": _meter_key(scope, meter_id),
                "ConditionExpression": "#s = :published",
                "ExpressionAttributeNames": {"#s": "status"},
                "ExpressionAttributeValues": serialize({":published": ACTIVE}),
            }
        },
        {
            "Update": {
                "TableName": table.name,
                "Key": _refs_key(scope, meter_id),
                "UpdateExpression": "ADD feature_count :one",
                "ExpressionAttributeValues": serialize({":one": 1}),
            }
        },
    ]


def release_ops(scope: Scope, meter_id: str, now: str, *, last: bool) -> list[dict[str, Any]]:
    """A feature stops using a meter.

    ``last=True``: the feature is the meter's only user (the condition checks it); the meter is archived.
    ``last=False``: others still use it (the condition checks that too); only the count goes down.
    """
    table = catalog.meters().table
    if not last:
        release = {
            "TableName": table.name,
            "Key": _refs_key(scope, meter_id),
            "UpdateExpression": "ADD feature_count :minus",
            "ConditionExpression": "feature_count > :one",
            "ExpressionAttributeValues": serialize({":minus": -1, ":one": 1}),
        }
        return [{"Update": release}]
    release = {
        "TableName": table.name,
        "Key": _refs_key(scope, meter_id),
        "UpdateExpression": "SET feature_count = :zero",
        "ConditionExpression": "attribute_not_exists(feature_count) OR feature_count <= :one",
        "ExpressionAttributeValues": serialize({":zero": 0, ":one": 1}),
    }
    archive = table.update_op(
        entity_pk(scope, KIND),
        meter_id,
        "SET #s = :archived, updated_at = :now ADD version :one",
        condition="attribute_exists(PK)",
        names={"#s": "status"},
        values={":archived": ARCHIVED, ":now": now, ":one": 1},
    )
    return [{"Update": release}, archive]
