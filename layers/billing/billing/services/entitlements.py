"""Entitlements: what a plan grants for a feature, and what a customer is entitled to through its subscriptions.

Item layout (``EntitiesTable``; ``<p>`` is ``<tenant>#<env>``): ``PK=<p>#entitlement``, ``SK=ent_<ULID>``,
``GSI1PK=<p>#plan_entitlements#<plan id>``, ``GSI1SK=<ent id>``; the claim ``<p>#entitlement#plan_feature`` /
``<plan id>#<feature id>`` makes one entitlement per feature and plan.

Read budget of a customer's check (docs/entitlements.md): the customer (1 item; by external id 2), its newest
``MAX_SUBSCRIPTIONS`` subscriptions (one Query), each distinct plan's entitlements (one Query each, at most
``MAX_PER_PLAN`` items), and their features (one BatchGetItem). Usage adds the counters of each metered feature's
current window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing import wiring
from billing.domain import entitlements as rules
from billing.domain import metering as m
from billing.errors import InvalidOperation, NotFound, ValidationFailed
from billing.ids import new_id
from billing.observability import metrics
from billing.schemas.entitlements import EntitlementCreate, EntitlementUpdate, UsageQuery
from billing.scope import Scope
from billing.services import customers, invoicing
from billing.store import catalog
from billing.store import invoices as keys
from billing.store.entities import ACTIVE, ARCHIVED, Entities, strip_keys
from billing.timeutil import iso, parse_iso, utcnow

MAX_PER_PLAN = 50
MAX_SUBSCRIPTIONS = 25
PLAN_FEATURE = "plan_feature"
LIVE = ("active", "trialing", "paused")


def repo() -> Entities:
    return Entities(wiring.entities(), "entitlement", "entitlement")


def plan_key(scope: Scope, plan_id: str) -> str:
    return f"{scope.prefix}#plan_entitlements#{plan_id}"


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"invalid request: {field}: {message}", {"errors": [{"field": field, "message": message}]})


def _plan_of(request: EntitlementCreate) -> str:
    if request.entity_type in ("ADDON", "SUBSCRIPTION"):
        raise InvalidOperation(
            f"{request.entity_type} entitlements are not supported yet; entitlements belong to plans",
            {"field": "entity_type"},
        )
    plan_id = request.plan_id or request.entity_id
    if not plan_id:
        raise _invalid("plan_id", "is required (or entity_type PLAN with entity_id)")
    if request.plan_id and request.entity_id and request.plan_id != request.entity_id:
        raise _invalid("entity_id", "differs from plan_id")
    return plan_id


def _check_shape(feature_type: str, record: Mapping[str, Any]) -> None:
    if feature_type != "metered" and record.get("usage_limit") is not None:
        raise _invalid("usage_limit", "applies to metered features only")
    if feature_type == "static" and not record.get("static_value"):
        raise _invalid("static_value", "is required for a static feature")


def plan_entitlements(scope: Scope, plan_id: str) -> list[dict[str, Any]]:
    """A plan's live entitlements, oldest first: one Query of at most ``MAX_PER_PLAN`` items."""
    items = repo().table.query(plan_key(scope, plan_id), index="GSI1", limit=MAX_PER_PLAN)
    return [strip_keys(i) for i in items if i.get("status") == ACTIVE]


def create(scope: Scope, request: EntitlementCreate, actor: str = "api") -> dict[str, Any]:
    plan_id = _plan_of(request)
    catalog.plans().get_active(scope, plan_id)
    feature = catalog.features().get_active(scope, request.feature_id)
    if feature["type"] != request.feature_type:
        raise _invalid("feature_type", f"feature {feature['id']} is {feature['type']}, not {request.feature_type}")
    if len(plan_entitlements(scope, plan_id)) >= MAX_PER_PLAN:
        raise InvalidOperation(f"a plan has at most {MAX_PER_PLAN} entitlements", {"limit": MAX_PER_PLAN})
    now = iso(utcnow())
    metered = request.feature_type == "metered"
    record: dict[str, Any] = {
        "id": new_id("entitlement"),
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "plan_id": plan_id,
        "entity_type": "PLAN",
        "entity_id": plan_id,
        "feature_id": feature["id"],
        "feature_type": request.feature_type,
        "is_enabled": request.is_enabled,
        "usage_limit": request.usage_limit,
        "usage_reset_period": (request.usage_reset_period or "MONTHLY") if metered else None,
        "is_soft_limit": request.is_soft_limit,
        "static_value": request.static_value,
        "config_value": request.config_value,
        "status": ACTIVE,
        "created_at": now,
        "updated_at": now,
        "created_by": actor,
        "updated_by": actor,
        "version": 1,
    }
    _check_shape(request.feature_type, record)
    indexes = {"GSI1PK": plan_key(scope, plan_id), "GSI1SK": record["id"]}
    created = repo().create(scope, record, indexes=indexes, unique={PLAN_FEATURE: f"{plan_id}#{feature['id']}"})
    metrics.add_metric(name="EntitlementCreated", unit="Count", value=1)
    return {**created, "feature": feature}


def get(scope: Scope, entitlement_id: str) -> dict[str, Any]:
    found = repo().get(scope, entitlement_id)
    if found.get("status") != ACTIVE:
        raise NotFound(f"entitlement {entitlement_id} is deleted", {"entity": "entitlement", "id": entitlement_id})
    return found


def update(scope: Scope, entitlement_id: str, request: EntitlementUpdate, actor: str = "api") -> dict[str, Any]:
    current = get(scope, entitlement_id)
    changes = request.model_dump(exclude_unset=True)
    if "usage_limit" in changes and current["feature_type"] != "metered" and changes["usage_limit"] is not None:
        raise _invalid("usage_limit", "applies to metered features only")
    changes = {k: v for k, v in changes.items() if v is not None or k == "usage_limit"}
    record = {**current, **changes, "updated_at": iso(utcnow()), "updated_by": actor}
    record["version"] = int(current["version"]) + 1
    _check_shape(current["feature_type"], record)
    indexes = {"GSI1PK": plan_key(scope, current["plan_id"]), "GSI1SK": current["id"]}
    return repo().replace(scope, record, int(current["version"]), indexes=indexes)


def delete(scope: Scope, entitlement_id: str, actor: str = "api") -> None:
    current = get(scope, entitlement_id)
    record = {**current, "status": ARCHIVED, "updated_at": iso(utcnow()), "updated_by": actor}
    record["version"] = int(current["version"]) + 1
    release = repo().release_op(scope, PLAN_FEATURE, f"{current['plan_id']}#{current['feature_id']}", current["id"])
    repo().replace(scope, record, int(current["version"]), extra_ops=[release])


def for_plan(scope: Scope, plan_id: str) -> list[dict[str, Any]]:
    catalog.plans().get(scope, plan_id)
    return plan_entitlements(scope, plan_id)


# -- a customer's entitlements ---------------------------------------------------------------------------------


def live_subscriptions(scope: Scope, customer_id: str) -> list[dict[str, Any]]:
    """The customer's subscriptions still running: one Query of its newest ``MAX_SUBSCRIPTIONS``."""
    key = keys.customer_subscriptions_key(scope, customer_id)
    items = wiring.entities().query(key, index="GSI1", forward=False, limit=MAX_SUBSCRIPTIONS)
    return [strip_keys(i) for i in items if i.get("subscription_status") in LIVE]


def _features(scope: Scope, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    return catalog.features().get_many(scope, ids) if ids else {}


def _source(ent: Mapping[str, Any], sub: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "entitlement_id": ent["id"],
        "entity_type": "plan",
        "entity_id": ent["plan_id"],
        "subscription_id": sub["id"],
        "is_enabled": bool(ent.get("is_enabled")),
        "usage_limit": ent.get("usage_limit"),
        "usage_reset_period": ent.get("usage_reset_period"),
        "is_soft_limit": bool(ent.get("is_soft_limit")),
        "static_value": ent.get("static_value"),
        "config_value": ent.get("config_value"),
        "quantity": 1,
        # the subscription's grid, for the usage window (not rendered)
        "_anchor": sub.get("billing_anchor") or sub.get("start_date"),
        "_timezone": sub.get("timezone") or "UTC",
    }


def aggregate(
    scope: Scope, subscriptions: Sequence[Mapping[str, Any]], feature_ids: Sequence[str] | None = None
) -> list[tuple[dict[str, Any], rules.Combined]]:
    """(feature, combined entitlement) for every feature the subscriptions' plans grant, in feature-id order."""
    by_plan: dict[str, list[dict[str, Any]]] = {}
    for sub in subscriptions:
        if sub["plan_id"] not in by_plan:
            by_plan[sub["plan_id"]] = plan_entitlements(scope, sub["plan_id"])
    sources: dict[str, list[dict[str, Any]]] = {}
    for sub in subscriptions:
        for ent in by_plan[sub["plan_id"]]:
            if feature_ids and ent["feature_id"] not in feature_ids:
                continue
            sources.setdefault(ent["feature_id"], []).append(_source(ent, sub))
    features = _features(scope, sorted(sources))
    out = []
    for feature_id in sorted(sources):
        feature = features.get(feature_id)
        if feature is None or feature.get("status") != ACTIVE:
            continue
        out.append((feature, rules.combine(feature_id, sources[feature_id])))
    return out


def subscription_view(scope: Scope, subscription_id: str, feature_ids: Sequence[str] | None) -> dict[str, Any]:
    sub = keys.subscriptions().get(scope, subscription_id)
    return {"subscription_id": sub["id"], "plan_id": sub["plan_id"], "features": aggregate(scope, [sub], feature_ids)}


def customer_view(scope: Scope, customer: Mapping[str, Any]) -> dict[str, Any]:
    subs = live_subscriptions(scope, customer["id"])
    return {"customer_id": customer["id"], "features": aggregate(scope, subs), "subscriptions": subs}


def for_customer(scope: Scope, customer_id: str) -> dict[str, Any]:
    return customer_view(scope, customers.get(scope, customer_id))


def for_external_customer(scope: Scope, external_id: str) -> dict[str, Any]:
    return customer_view(scope, customers.get_by_external_id(scope, external_id))


# -- usage against the limits ----------------------------------------------------------------------------------


def _usage(
    scope: Scope, feature: Mapping[str, Any], combined: rules.Combined, external_id: str, now: datetime
) -> tuple[Decimal, datetime | None]:
    """Usage of a metered feature in its current window (from the first source's subscription grid)."""
    source = combined.sources[0]
    anchor = parse_iso(str(source["_anchor"]))
    window = rules.usage_window(combined.usage_reset_period, anchor, now, str(source["_timezone"]))
    start, end = (anchor, None) if window is None else (window.start, window.end)
    meter_record = catalog.meters().find(scope, str(feature["meter_id"]))
    if meter_record is None or now <= start:
        return Decimal(0), end
    meter = m.Meter.from_record(meter_record)
    return invoicing.meter_usage(scope, meter, external_id, start, now), end


def usage_summary(scope: Scope, query: UsageQuery, now: datetime) -> dict[str, Any]:
    if query.customer_id:
        customer = customers.get(scope, query.customer_id)
    elif query.customer_lookup_key:
        customer = customers.get_by_external_id(scope, query.customer_lookup_key)
    else:
        raise _invalid("customer_id", "give customer_id or customer_lookup_key")
    subs = live_subscriptions(scope, customer["id"])
    if query.subscription_ids:
        subs = [s for s in subs if s["id"] in query.subscription_ids]
    rows = []
    for feature, combined in aggregate(scope, subs, query.feature_ids):
        if query.feature_lookup_keys and feature.get("lookup_key") not in query.feature_lookup_keys:
            continue
        used, resets = Decimal(0), None
        if feature["type"] == "metered" and combined.is_enabled:
            used, resets = _usage(scope, feature, combined, customer["external_id"], now)
        rows.append({"feature": feature, "combined": combined, "used": used, "resets_at": resets})
    return {"customer_id": customer["id"], "rows": rows}
