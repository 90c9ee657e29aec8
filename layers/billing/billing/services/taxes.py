"""Tax rates and their associations to the tenant, a customer or a subscription; which rates an invoice carries.

Records (entities table):

- tax rate ``PK=<p>#tax_rate``, ``SK=<id>``: ``TaxRateResponse``'s fields; ``PK=<p>#tax_rate#code``, ``SK=<code>``
  claims its code. A rate's type and value never change (invoices name it); archiving it (DELETE) stops new
  associations.
- tax association ``PK=<p>#tax_association``, ``SK=<id>``; ``GSI1PK=<p>#tax_associations#<type>#<entity id>``
  (the tenant's associations use the tenant id), so "the associations of this customer" is one Query.

**Which rates a subscription's invoices carry** is decided when the subscription is created and kept on it
(``tax_rates``, snapshots of rate and association), so invoicing reads nothing: the ``tax_rate_overrides`` of the
request when given (they become the subscription's own associations, written in its transaction); else the
customer's auto-applied associations in the subscription's currency (or with no currency); else the tenant's. The most
specific level with any association wins and all of its rates apply, in priority order (lower first). A
``POST /taxes/associations`` or ``DELETE`` on a subscription changes that subscription's list in the same
transaction. An association applies to invoices of periods starting inside its ``[start_date, end_date)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from billing import wiring
from billing.errors import InvalidOperation, NotFound, VersionConflict, not_found
from billing.ids import new_id
from billing.observability import metrics
from billing.pagination import page
from billing.schemas.taxes import (
    MAX_TAXES_PER_ENTITY,
    TaxAssociationCreate,
    TaxAssociationFilter,
    TaxAssociationUpdate,
    TaxRateCreate,
    TaxRateFilter,
    TaxRateOverride,
    TaxRateUpdate,
    tax_association_out,
    tax_rate_out,
)
from billing.scope import Scope
from billing.store import catalog
from billing.store import invoices as keys
from billing.store.dynamo import ConditionFailed
from billing.store.entities import ACTIVE, ARCHIVED, Entities
from billing.timeutil import iso, parse_iso, utcnow

CODE = "code"


def rates() -> Entities:
    return Entities(wiring.entities(), "tax_rate", "tax rate")


def associations() -> Entities:
    return Entities(wiring.entities(), "tax_association", "tax association")


def _entity_key(scope: Scope, entity_type: str, entity_id: str) -> str:
    return f"{scope.prefix}#tax_associations#{entity_type}#{entity_id}"


# -- rates -----------------------------------------------------------------------------------------------------


def create_rate(scope: Scope, request: TaxRateCreate, actor: str = "api") -> dict[str, Any]:
    now = iso(utcnow())
    record = {
        "id": new_id("tax_rate"),
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "code": request.code,
        "name": request.name,
        "description": request.description,
        "tax_rate_type": request.tax_rate_type,
        "percentage_value": request.percentage_value,
        "fixed_value": request.fixed_value,
        "scope": request.scope,
        "tax_rate_status": "ACTIVE",
        "metadata": request.metadata or {},
        "status": ACTIVE,
        "created_at": now,
        "updated_at": now,
        "created_by": actor,
        "updated_by": actor,
        "version": 1,
    }
    created = rates().create(scope, record, unique={CODE: request.code})
    metrics.add_metric(name="TaxRateCreated", unit="Count", value=1)
    return created


def get_rate(scope: Scope, rate_id: str) -> dict[str, Any]:
    return rates().get(scope, rate_id)


def rate_by_code(scope: Scope, code: str) -> dict[str, Any]:
    found = rates().lookup_unique(scope, CODE, code)
    rate = rates().find(scope, found) if found else None
    if rate is None:
        raise NotFound(f"tax rate with code {code!r} was not found", {"entity": "tax rate", "code": code})
    if rate.get("status") != ACTIVE or rate.get("tax_rate_status") != "ACTIVE":
        raise InvalidOperation(f"tax rate {code!r} is not active", {"code": code})
    return rate


def update_rate(scope: Scope, rate_id: str, request: TaxRateUpdate, actor: str = "api") -> dict[str, Any]:
    current = rates().get_active(scope, rate_id)
    changes = request.model_dump(exclude_unset=True, exclude_none=True)
    record = {**current, **changes, "updated_at": iso(utcnow()), "updated_by": actor}
    record["version"] = int(current["version"]) + 1
    extra = []
    if changes.get("code") and changes["code"] != current["code"]:
        extra = [
            rates().claim_op(scope, CODE, changes["code"], rate_id),
            rates().release_op(scope, CODE, current["code"], rate_id),
        ]
    try:
        return rates().replace(scope, record, int(current["version"]), extra_ops=extra)
    except ConditionFailed:
        raise InvalidOperation(f"tax rate code {changes.get('code')!r} is taken", {"field": "code"}) from None


def archive_rate(scope: Scope, rate_id: str, actor: str = "api") -> None:
    current = rates().get(scope, rate_id)
    if current["status"] != ACTIVE:
        return
    record = {**current, "status": ARCHIVED, "tax_rate_status": "INACTIVE", "updated_at": iso(utcnow())}
    record["updated_by"] = actor
    record["version"] = int(current["version"]) + 1
    extra = [rates().release_op(scope, CODE, current["code"], rate_id)]
    rates().replace(scope, record, int(current["version"]), extra_ops=extra)


def list_rates(scope: Scope, criteria: TaxRateFilter) -> dict[str, Any]:
    records = criteria.arrange([r for r in rates().list(scope) if criteria.keep(r)])
    return page(records, criteria.limit, criteria.offset, tax_rate_out)


# -- associations ----------------------------------------------------------------------------------------------


def _association(
    scope: Scope,
    rate: Mapping[str, Any],
    entity_type: str,
    entity_id: str,
    *,
    currency: str | None,
    priority: int,
    auto_apply: bool,
    start: datetime | None,
    end: datetime | None,
    metadata: Mapping[str, str] | None,
    now: datetime,
    actor: str = "api",
) -> dict[str, Any]:
    stamp = iso(now)
    return {
        "id": new_id("tax_association"),
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "tax_rate_id": rate["id"],
        "entity_type": entity_type,
        "entity_id": entity_id,
        "currency": currency,
        "priority": priority,
        "auto_apply": auto_apply,
        "start_date": iso(start or now),
        "end_date": iso(end) if end else None,
        "rate": {k: rate.get(k) for k in ("code", "name", "tax_rate_type", "percentage_value", "fixed_value")},
        "metadata": dict(metadata or {}),
        "status": ACTIVE,
        "created_at": stamp,
        "updated_at": stamp,
        "created_by": actor,
        "updated_by": actor,
        "version": 1,
    }


def _put_op(scope: Scope, record: Mapping[str, Any]) -> dict[str, Any]:
    repo = associations()
    indexes = {
        "GSI1PK": _entity_key(scope, record["entity_type"], record["entity_id"]),
        "GSI1SK": record["id"],
    }
    return repo.table.put_op(repo.item(scope, record, indexes), condition="attribute_not_exists(PK)")


def snapshot(record: Mapping[str, Any]) -> dict[str, Any]:
    """What a subscription keeps of an association: all invoicing needs to tax."""
    rate = record["rate"]
    return {
        "tax_rate_id": record["tax_rate_id"],
        "tax_association_id": record["id"],
        "name": rate.get("name"),
        "code": rate.get("code"),
        "tax_rate_type": rate["tax_rate_type"],
        "percentage_value": rate.get("percentage_value"),
        "fixed_value": rate.get("fixed_value"),
        "priority": int(record.get("priority") or 0),
        "start_date": record.get("start_date"),
        "end_date": record.get("end_date"),
    }


def _of_entity(scope: Scope, entity_type: str, entity_id: str) -> list[dict[str, Any]]:
    return associations().list_by_index("GSI1", _entity_key(scope, entity_type, entity_id))


def _applicable(items: Sequence[Mapping[str, Any]], currency: str, now: datetime) -> list[Mapping[str, Any]]:
    out = [
        a
        for a in items
        if a.get("status") == ACTIVE
        and a.get("auto_apply", True)
        and (not a.get("currency") or a["currency"] == currency)
        and (not a.get("end_date") or parse_iso(a["end_date"]) > now)
    ]
    return sorted(out, key=lambda a: (int(a.get("priority") or 0), a["created_at"]))


def for_customer(
    scope: Scope, customer_id: str, overrides: Sequence[TaxRateOverride], now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(association records, ops) of a customer's ``tax_rate_overrides``, for its create transaction."""
    if len(overrides) > MAX_TAXES_PER_ENTITY:
        raise InvalidOperation(f"at most {MAX_TAXES_PER_ENTITY} tax rates", {"field": "tax_rate_overrides"})
    made = [
        _association(
            scope,
            rate_by_code(scope, o.tax_rate_code),
            "customer",
            customer_id,
            currency=o.currency,
            priority=o.priority,
            auto_apply=o.auto_apply,
            start=None,
            end=None,
            metadata=o.metadata,
            now=now,
        )
        for o in overrides
    ]
    return made, [_put_op(scope, a) for a in made]


def for_subscription(
    scope: Scope,
    sub: Mapping[str, Any],
    overrides: Sequence[TaxRateOverride] | None,
    now: datetime,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the subscription's tax snapshots, ops writing its own associations) for its create transaction."""
    currency = sub["currency"]
    if overrides:
        if len(overrides) > MAX_TAXES_PER_ENTITY:
            raise InvalidOperation(f"at most {MAX_TAXES_PER_ENTITY} tax rates", {"field": "tax_rate_overrides"})
        made = []
        for o in overrides:
            if o.currency != currency:
                raise InvalidOperation(
                    f"tax rate override {o.tax_rate_code} is in {o.currency}, the subscription in {currency}",
                    {"field": "tax_rate_overrides"},
                )
            rate = rate_by_code(scope, o.tax_rate_code)
            made.append(
                _association(
                    scope,
                    rate,
                    "subscription",
                    sub["id"],
                    currency=o.currency,
                    priority=o.priority,
                    auto_apply=o.auto_apply,
                    start=None,
                    end=None,
                    metadata=o.metadata,
                    now=now,
                )
            )
        chosen = _applicable(made, currency, now)
        return [snapshot(a) for a in chosen], [_put_op(scope, a) for a in made]
    inherited = _applicable(_of_entity(scope, "customer", sub["customer_id"]), currency, now)
    if not inherited:
        inherited = _applicable(_of_entity(scope, "tenant", scope.tenant_id), currency, now)
    return [snapshot(a) for a in inherited[:MAX_TAXES_PER_ENTITY]], []


def for_invoice(sub: Mapping[str, Any], period_start: datetime) -> list[dict[str, Any]]:
    """The tax inputs (``services.adjustments``) of the subscription's invoice of a period starting then."""
    out = []
    for item in sub.get("tax_rates") or []:
        if item.get("end_date") and period_start >= parse_iso(item["end_date"]):
            continue
        out.append(dict(item))
    return out


def _entity_id(scope: Scope, request: TaxAssociationCreate) -> str:
    if request.entity_type == "tenant":
        return request.entity_id or scope.tenant_id
    if request.entity_type == "customer":
        if request.entity_id:
            return str(catalog.customers().get(scope, request.entity_id)["id"])
        from billing.services import customers  # the customer service imports this module

        return str(customers.get_by_external_id(scope, str(request.external_customer_id))["id"])
    return str(request.entity_id)


def create_association(scope: Scope, request: TaxAssociationCreate, now: datetime) -> dict[str, Any]:
    rate = rate_by_code(scope, request.tax_rate_code)
    entity_id = _entity_id(scope, request)
    if request.entity_type == "tenant" and entity_id != scope.tenant_id:
        raise InvalidOperation("a tenant association names this tenant", {"field": "entity_id"})
    record = _association(
        scope,
        rate,
        request.entity_type,
        entity_id,
        currency=request.currency,
        priority=request.priority,
        auto_apply=request.auto_apply,
        start=request.start_date,
        end=request.end_date,
        metadata=request.metadata,
        now=now,
    )
    if request.entity_type != "subscription":
        wiring.entities().transact([_put_op(scope, record)])
        return {**record, "tax_rate": rate}
    _change_subscription(scope, entity_id, record, add=True, now=now)
    return {**record, "tax_rate": rate}


def _change_subscription(
    scope: Scope, subscription_id: str, record: Mapping[str, Any], *, add: bool, now: datetime
) -> None:
    """Add (or remove) a subscription's association and its entry in the subscription's tax list, in one write."""
    repo = keys.subscriptions()
    for _ in range(5):
        sub = repo.get(scope, subscription_id)
        current = [t for t in sub.get("tax_rates") or [] if t["tax_association_id"] != record["id"]]
        if add:
            if record.get("currency") and record["currency"] != sub["currency"]:
                raise InvalidOperation(
                    f"the association is in {record['currency']}, the subscription in {sub['currency']}",
                    {"field": "currency"},
                )
            if len(current) >= MAX_TAXES_PER_ENTITY:
                raise InvalidOperation(f"a subscription takes at most {MAX_TAXES_PER_ENTITY} tax rates")
            if record.get("auto_apply", True):
                current = sorted([*current, snapshot(record)], key=lambda t: int(t.get("priority") or 0))
        updated = {**sub, "tax_rates": current, "updated_at": iso(now), "version": int(sub["version"]) + 1}
        from billing.services import invoicing  # invoicing imports this module

        put = repo.table.put_op(
            repo.item(scope, updated, invoicing.subscription_indexes(scope, updated)),
            condition="attribute_exists(PK) AND version = :v",
            values={":v": int(sub["version"])},
        )
        if add:
            op = _put_op(scope, record)
        else:
            op = associations().table.update_op(
                associations().item(scope, record)["PK"],
                record["id"],
                "SET #s = :a, updated_at = :t",
                names={"#s": "status"},
                values={":a": ARCHIVED, ":t": iso(now)},
            )
        try:
            wiring.entities().transact([put, op])
            return
        except ConditionFailed:
            continue
    raise VersionConflict(f"subscription {subscription_id} changed meanwhile; retry", {"id": subscription_id})


def get_association(scope: Scope, association_id: str) -> dict[str, Any]:
    found = associations().get(scope, association_id)
    return {**found, "tax_rate": rates().find(scope, found["tax_rate_id"])}


def update_association(
    scope: Scope, association_id: str, request: TaxAssociationUpdate, actor: str = "api"
) -> dict[str, Any]:
    current = associations().get_active(scope, association_id)
    if current["entity_type"] == "subscription":
        raise InvalidOperation(
            "a subscription's tax association is replaced, not edited: delete it and create another",
            {"id": association_id},
        )
    changes = request.model_dump(exclude_unset=True, exclude_none=True)
    record = {**current, **changes, "updated_at": iso(utcnow()), "updated_by": actor}
    record["version"] = int(current["version"]) + 1
    indexes = {"GSI1PK": _entity_key(scope, current["entity_type"], current["entity_id"]), "GSI1SK": current["id"]}
    updated = associations().replace(scope, record, int(current["version"]), indexes=indexes)
    return {**updated, "tax_rate": rates().find(scope, current["tax_rate_id"])}


def delete_association(scope: Scope, association_id: str, now: datetime) -> None:
    current = associations().find(scope, association_id)
    if current is None:
        raise not_found("tax association", association_id)
    if current["status"] != ACTIVE:
        return
    if current["entity_type"] == "subscription":
        _change_subscription(scope, current["entity_id"], current, add=False, now=now)
        return
    record = {**current, "status": ARCHIVED, "updated_at": iso(now), "version": int(current["version"]) + 1}
    indexes = {"GSI1PK": _entity_key(scope, current["entity_type"], current["entity_id"]), "GSI1SK": current["id"]}
    associations().replace(scope, record, int(current["version"]), indexes=indexes)


def list_associations(scope: Scope, criteria: TaxAssociationFilter) -> dict[str, Any]:
    if criteria.entity_type and (criteria.entity_id or criteria.entity_type == "tenant"):
        found = _of_entity(scope, criteria.entity_type, criteria.entity_id or scope.tenant_id)
    else:
        found = associations().list(scope)
    records = [
        a
        for a in found
        if a.get("status") == ACTIVE
        and (not criteria.entity_type or a["entity_type"] == criteria.entity_type)
        and (not criteria.entity_id or a["entity_id"] == criteria.entity_id)
        and (not criteria.tax_rate_id or a["tax_rate_id"] == criteria.tax_rate_id)
    ]
    rate_map = rates().get_many(scope, {a["tax_rate_id"] for a in records}) if records else {}
    return page(
        records,
        criteria.limit,
        criteria.offset,
        lambda a: tax_association_out({**a, "tax_rate": rate_map.get(a["tax_rate_id"])}),
    )
