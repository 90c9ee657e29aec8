"""Prices of plans: create, read, search, archive.

The price record is shared with invoicing, which rates usage with it. It uses Flexprice's field names and
Decimal money::

    {id: "price_<ULID>", tenant_id, environment_id, entity_type: "PLAN", entity_id, plan_id (= entity_id),
     type, billing_model, tier_mode | None, tiers: [{up_to: int | None, unit_amount, flat_amount | None}],
     amount: Decimal | None, currency (lowercase), billing_period, billing_period_count, billing_cadence,
     invoice_cadence, meter_id | None, transform_quantity: {divide_by: int, round: "up" | "down"} | None,
     price_unit_type, lookup_key, description, metadata, display_name, status, created_at, updated_at,
     created_by, updated_by, version}

Money is stored in canonical form (``12.5``, not ``12.50``; see ``schemas.prices.canonical``). Read records
through ``get``/``of_plan``/``normalize``: they restore absent optional fields as None and integers as int.

Index ``GSI1PK = <tenant>#<env>#plan_prices#<plan_id>``, ``GSI1SK = <price id>``: a plan's prices are one
Query (``of_plan``). ``lookup_key`` is unique per environment while the price is active.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from billing.errors import InvalidOperation, NotFound, not_found
from billing.ids import PREFIXES, new_id, ulid
from billing.observability import metrics
from billing.schemas.prices import PriceCreate, PriceFields, PriceFilter
from billing.scope import Scope
from billing.store import catalog
from billing.store.dynamo import ConditionFailed
from billing.store.entities import ACTIVE, ARCHIVED, entity_pk, strip_keys
from billing.timeutil import iso, utcnow

INDEX = "GSI1"
UNIQUE_FIELD = "lookup_key"
ENTITY_TYPE = "PLAN"

_OPTIONAL = (
    "tier_mode",
    "amount",
    "meter_id",
    "transform_quantity",
    "lookup_key",
    "description",
    "display_name",
)


def plan_prices_key(scope: Scope, plan_id: str) -> str:
    return f"{scope.prefix}#plan_prices#{plan_id}"


def indexes(scope: Scope, record: Mapping[str, Any]) -> dict[str, str]:
    return {f"{INDEX}PK": plan_prices_key(scope, record["plan_id"]), f"{INDEX}SK": record["id"]}


def ordered_ids(count: int) -> list[str]:
    """Price ids that sort in the order given (ULIDs minted in one millisecond would not)."""
    start = int(utcnow().timestamp() * 1000)
    return [f"{PREFIXES['price']}_{ulid(start + offset)}" for offset in range(count)]


# -- the record ----------------------------------------------------------------------------------------------


def build(
    scope: Scope,
    plan_id: str,
    fields: PriceFields,
    *,
    price_id: str,
    now: str,
    actor: str = "api",
) -> dict[str, Any]:
    """The stored record of a validated price (``fields.check()`` has passed)."""
    tiered = fields.billing_model == "TIERED"
    tiers = [
        {"up_to": t.up_to, "unit_amount": t.unit_amount, "flat_amount": t.flat_amount} for t in (fields.tiers or [])
    ]
    transform = fields.transform_quantity
    return {
        "id": price_id,
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "entity_type": ENTITY_TYPE,
        "entity_id": plan_id,
        "plan_id": plan_id,
        "type": fields.type,
        "billing_model": fields.billing_model,
        "tier_mode": fields.tier_mode if tiered else None,
        "tiers": tiers if tiered else [],
        "amount": None if tiered else fields.amount,
        "currency": fields.currency,
        "billing_period": fields.billing_period,
        "billing_period_count": fields.billing_period_count,
        "billing_cadence": fields.billing_cadence,
        "invoice_cadence": fields.invoice_cadence,
        "meter_id": fields.meter_id if fields.type == "USAGE" else None,
        "transform_quantity": (
            {"divide_by": transform.divide_by, "round": transform.round}
            if transform is not None and fields.billing_model == "PACKAGE"
            else None
        ),
        "price_unit_type": fields.price_unit_type,
        "lookup_key": fields.lookup_key,
        "description": fields.description,
        "metadata": fields.metadata or {},
        "display_name": fields.display_name,
        "status": ACTIVE,
        "created_at": now,
        "updated_at": now,
        "created_by": actor,
        "updated_by": actor,
        "version": 1,
    }


def _int(value: Any) -> Any:
    return int(value) if isinstance(value, Decimal) else value


def normalize(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A record as read from the table, with the types it was written with.

    The store drops attributes whose value is None and reads every number back as Decimal; readers of prices
    (this API, invoicing) get every field of the record, integers as ``int`` and money as ``Decimal``.
    """
    record = strip_keys(stored)
    for name in _OPTIONAL:
        record.setdefault(name, None)
    record.setdefault("tiers", [])
    record.setdefault("metadata", {})
    for name in ("billing_period_count", "version"):
        record[name] = _int(record.get(name))
    record["tiers"] = [
        {
            "up_to": _int(t.get("up_to")),
            "unit_amount": t["unit_amount"],
            "flat_amount": t.get("flat_amount"),
        }
        for t in record["tiers"]
    ]
    transform = record.get("transform_quantity")
    if transform:
        record["transform_quantity"] = {
            "divide_by": _int(transform["divide_by"]),
            "round": transform["round"],
        }
    return record


# -- reads ---------------------------------------------------------------------------------------------------


def get(scope: Scope, price_id: str) -> dict[str, Any]:
    return normalize(catalog.prices().get(scope, price_id))


def of_plan(scope: Scope, plan_id: str, *, active_only: bool = True) -> list[dict[str, Any]]:
    """A plan's prices in creation order: one Query on the plan-prices index."""
    repo = catalog.prices()
    items = repo.table.query(plan_prices_key(scope, plan_id), index=INDEX, forward=True)
    records = [normalize(i) for i in items]
    return [r for r in records if r.get("status") == ACTIVE] if active_only else records


def search(scope: Scope, criteria: PriceFilter) -> list[dict[str, Any]]:
    """Prices matching ``criteria``, newest first (``order=asc`` reverses)."""
    repo = catalog.prices()
    plans = criteria.plan_scope()
    candidates: Iterable[Mapping[str, Any]]
    if plans is not None:
        candidates = [item for plan_id in plans for item in of_plan(scope, plan_id, active_only=False)]
    elif criteria.price_ids:
        candidates = repo.get_many(scope, criteria.price_ids).values()
    else:
        candidates = repo.list(scope)
    records = sorted((normalize(c) for c in candidates), key=lambda r: r["id"], reverse=True)
    return criteria.arrange([r for r in records if criteria.keep(r)])


# -- writes --------------------------------------------------------------------------------------------------


def _active_check(scope: Scope, kind: str, entity_id: str) -> dict[str, Any]:
    """A transaction item that fails unless the entity still exists and is active."""
    return {
        "ConditionCheck": {
            "TableName": catalog.prices().table.name,
            "Key": {"PK": {"S": entity_pk(scope, kind)}, "SK": {"S": entity_id}},
            "ConditionExpression": "#status = :active",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":active": {"S": ACTIVE}},
        }
    }


def check_meters(scope: Scope, wanted: Sequence[tuple[str, str]]) -> None:
    """Each ``(field, meter_id)`` must name an active meter of this tenant and environment (else 404)."""
    if not wanted:
        return
    found = catalog.meters().get_many(scope, [meter_id for _, meter_id in wanted])
    for field, meter_id in wanted:
        meter = found.get(meter_id)
        if meter is None or meter.get("status") != ACTIVE:
            state = "was not found" if meter is None else "is archived"
            raise NotFound(f"meter {meter_id} {state}", {"entity": "meter", "id": meter_id, "field": field})


def create(scope: Scope, request: PriceCreate, actor: str = "api") -> dict[str, Any]:
    request.check()
    plan = catalog.plans().get_active(scope, request.entity_id)
    if request.meter_id:
        check_meters(scope, [("meter_id", request.meter_id)])
    now = iso(utcnow())
    record = build(scope, plan["id"], request, price_id=new_id("price"), now=now, actor=actor)
    unique = {UNIQUE_FIELD: request.lookup_key} if request.lookup_key else {}
    checks = [("plan", plan["id"])]
    if record["meter_id"]:
        checks.append(("meter", record["meter_id"]))
    try:
        catalog.prices().create(
            scope,
            record,
            indexes=indexes(scope, record),
            unique=unique,
            extra_ops=[_active_check(scope, kind, entity_id) for kind, entity_id in checks],
        )
    except ConditionFailed as failed:
        # The plan or the meter was archived between the read above and this write.
        for position, reason in enumerate(failed.reasons[1 + len(unique) :]):
            if reason == "ConditionalCheckFailed":
                kind, entity_id = checks[position]
                raise NotFound(
                    f"{kind} {entity_id} is archived",
                    {"entity": kind, "id": entity_id, "field": "entity_id" if kind == "plan" else "meter_id"},
                ) from None
        raise
    metrics.add_metric(name="PriceCreated", unit="Count", value=1)
    return record


def archive(scope: Scope, price_id: str, end_date: Any = None, actor: str = "api") -> dict[str, Any]:
    """Archive a price now and free its lookup key. A future ``end_date`` (scheduled end) is not supported."""
    now = utcnow()
    if end_date is not None and end_date > now:
        raise InvalidOperation(
            "a price ends when it is deleted; a future end_date is not supported",
            {"field": "end_date"},
        )
    repo = catalog.prices()
    stored = repo.find(scope, price_id)
    if stored is None:
        raise not_found("price", price_id)
    current = normalize(stored)
    if current["status"] == ARCHIVED:
        return current
    record = {**current, "status": ARCHIVED, "updated_at": iso(now), "updated_by": actor}
    record["version"] = current["version"] + 1
    extra = []
    if current.get("lookup_key"):
        extra.append(repo.release_op(scope, UNIQUE_FIELD, current["lookup_key"], current["id"]))
    archived = repo.replace(scope, record, current["version"], indexes=indexes(scope, current), extra_ops=extra)
    metrics.add_metric(name="PriceArchived", unit="Count", value=1)
    return archived
