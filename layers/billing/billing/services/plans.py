"""Plans: create (with inline prices, all or nothing), read, search, update, archive.

``lookup_key`` is unique per environment while the plan is active.
"""

from __future__ import annotations

from typing import Any

from billing.errors import AlreadyExists, NotFound, ValidationFailed
from billing.ids import new_id
from billing.observability import metrics
from billing.pagination import page
from billing.schemas.plans import PlanCreate, PlanFilter, PlanUpdate, plan_out
from billing.schemas.prices import rejected
from billing.scope import Scope
from billing.services import prices
from billing.store import catalog
from billing.store.dynamo import MAX_TRANSACT_ITEMS, ConditionFailed
from billing.store.entities import ACTIVE, ARCHIVED
from billing.timeutil import iso, utcnow

UNIQUE_FIELD = "lookup_key"


def _int(value: Any) -> Any:
    return None if value is None else int(value)


def normalize(stored: dict[str, Any]) -> dict[str, Any]:
    record = dict(stored)
    for name in ("lookup_key", "description", "display_order"):
        record.setdefault(name, None)
    record["display_order"] = _int(record["display_order"])
    record["version"] = int(record["version"])
    record.setdefault("metadata", {})
    return record


def _check_inline_prices(request: PlanCreate) -> None:
    """Every rule of each inline price, plus the ones that span them (lookup keys, transaction size)."""
    problems: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for position, price in enumerate(request.prices or []):
        problems.extend((f"prices.{position}.{field}", msg) for field, msg in price.problems())
        key = price.lookup_key
        if key is not None:
            if key in seen:
                problems.append((f"prices.{position}.lookup_key", f"repeats the lookup_key of prices.{seen[key]}"))
            seen.setdefault(key, position)
    if problems:
        raise rejected(problems)
    items = 1 + bool(request.lookup_key) + len(request.prices or []) + len(seen)
    if items > MAX_TRANSACT_ITEMS:
        raise ValidationFailed(
            f"invalid request: prices: a plan is created with at most {MAX_TRANSACT_ITEMS} items "
            f"(the plan, its lookup key, each price and each price lookup key); this request needs {items}",
            {"errors": [{"field": "prices", "message": "too many inline prices and lookup keys"}]},
        )


def create(scope: Scope, request: PlanCreate, actor: str = "api") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The plan and its inline prices, written in one transaction: one bad price means nothing is written."""
    _check_inline_prices(request)
    inline = request.prices or []
    prices.check_meters(scope, [(f"prices.{i}.meter_id", p.meter_id) for i, p in enumerate(inline) if p.meter_id])
    now = iso(utcnow())
    plan: dict[str, Any] = {
        "id": new_id("plan"),
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "name": request.name,
        "lookup_key": request.lookup_key,
        "description": request.description,
        "display_order": request.display_order,
        "metadata": request.metadata or {},
        "status": ACTIVE,
        "created_at": now,
        "updated_at": now,
        "created_by": actor,
        "updated_by": actor,
        "version": 1,
    }
    price_repo = catalog.prices()
    records = [
        prices.build(scope, plan["id"], fields, price_id=price_id, now=now, actor=actor)
        for fields, price_id in zip(inline, prices.ordered_ids(len(inline)), strict=True)
    ]
    extra: list[dict[str, Any]] = []
    claims: list[int] = []  # the inline price position of each lookup-key claim, in transaction order
    for record in records:
        extra.append(
            price_repo.table.put_op(
                price_repo.item(scope, record, prices.indexes(scope, record)),
                condition="attribute_not_exists(PK)",
            )
        )
    for position, record in enumerate(records):
        if record["lookup_key"]:
            extra.append(price_repo.claim_op(scope, prices.UNIQUE_FIELD, record["lookup_key"], record["id"]))
            claims.append(position)
    unique = {UNIQUE_FIELD: request.lookup_key} if request.lookup_key else {}
    try:
        catalog.plans().create(scope, plan, unique=unique, extra_ops=extra)
    except ConditionFailed as failed:
        first_claim = 1 + len(unique) + len(records)
        for offset, reason in enumerate(failed.reasons[first_claim:]):
            if reason == "ConditionalCheckFailed":
                position = claims[offset]
                key = records[position]["lookup_key"]
                raise AlreadyExists(
                    f"price with lookup_key {key!r} already exists",
                    {"entity": "price", "field": f"prices.{position}.lookup_key", "value": key},
                ) from None
        raise
    metrics.add_metric(name="PlanCreated", unit="Count", value=1)
    if records:
        metrics.add_metric(name="PriceCreated", unit="Count", value=len(records))
    return plan, records


def get(scope: Scope, plan_id: str) -> dict[str, Any]:
    return normalize(catalog.plans().get(scope, plan_id))


def search(scope: Scope, criteria: PlanFilter) -> list[dict[str, Any]]:
    return criteria.arrange([normalize(p) for p in catalog.plans().list(scope) if criteria.keep(p)])


def page_of(scope: Scope, criteria: PlanFilter) -> dict[str, Any]:
    """The list envelope of a search; ``expand=prices`` adds each listed plan's active prices."""
    found = search(scope, criteria)
    if not criteria.expands_prices():
        return page(found, criteria.limit, criteria.offset, plan_out)
    return page(found, criteria.limit, criteria.offset, lambda p: plan_out(p, prices.of_plan(scope, p["id"])))


def update(scope: Scope, plan_id: str, request: PlanUpdate, actor: str = "api") -> dict[str, Any]:
    repo = catalog.plans()
    current = get(scope, plan_id)
    if current["status"] != ACTIVE:
        raise NotFound(f"plan {plan_id} is archived", {"entity": "plan", "id": plan_id})
    changes = request.model_dump(exclude_unset=True, exclude_none=True)
    record = {**current, **changes, "updated_at": iso(utcnow()), "updated_by": actor}
    record["version"] = current["version"] + 1
    extra = []
    new_key = changes.get(UNIQUE_FIELD)
    if new_key and new_key != current["lookup_key"]:
        extra.append(repo.claim_op(scope, UNIQUE_FIELD, new_key, plan_id))
        if current["lookup_key"]:
            extra.append(repo.release_op(scope, UNIQUE_FIELD, current["lookup_key"], plan_id))
    try:
        return repo.replace(scope, record, current["version"], extra_ops=extra)
    except ConditionFailed:
        # Only the claim of the new lookup key can fail here: another plan holds it.
        raise AlreadyExists(
            f"plan with lookup_key {new_key!r} already exists",
            {"entity": "plan", "field": UNIQUE_FIELD, "value": new_key},
        ) from None


def archive(scope: Scope, plan_id: str, actor: str = "api") -> dict[str, Any]:
    """Archive the plan and free its lookup key. Its prices stay, for the subscriptions that use them."""
    repo = catalog.plans()
    current = get(scope, plan_id)
    if current["status"] == ARCHIVED:
        return current
    record = {**current, "status": ARCHIVED, "updated_at": iso(utcnow()), "updated_by": actor}
    record["version"] = current["version"] + 1
    extra = []
    if current["lookup_key"]:
        extra.append(repo.release_op(scope, UNIQUE_FIELD, current["lookup_key"], plan_id))
    archived = repo.replace(scope, record, current["version"], extra_ops=extra)
    metrics.add_metric(name="PlanArchived", unit="Count", value=1)
    return archived
