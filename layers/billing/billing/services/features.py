"""Features: create (with an inline meter or a ``meter_id``), read, list, update, archive.

Record (kind ``feature`` on the entities table, ``store.catalog.features()``): the ``FeatureResponse``
fields (``id``, ``name``, ``lookup_key``, ``description``, ``type``, ``meter_id``, ``metadata``,
``unit_singular``, ``unit_plural``, ``tenant_id``, ``environment_id``, ``status``, ``created_at/by``,
``updated_at/by``) plus ``version``.

Keys and access patterns:

- ``PK = <tenant>#<env>#feature``, ``SK = <feature id>``: get by id; list and search are one Query of this
  partition, newest first, filtered in memory (a catalog holds tens to hundreds of features).
- ``PK = <tenant>#<env>#feature#lookup_key``, ``SK = <lookup key>``: the uniqueness claim of a published
  feature's lookup key, written in the feature's transaction and released when it is archived.
- No GSI: no access pattern needs one (features by meter go through the meter's reference count, see
  ``billing.services.meters``).

A feature with an inline meter is written with its meter in one transaction, so a failure never leaves
one without the other. Then the new meter's back-fill is requested (``billing.services.backfill``): it counts
the events stored before the meter existed and those ingested while ingestion's meter cache was stale.
"""

from __future__ import annotations

from typing import Any

from billing.errors import InvalidOperation, NotFound, ServiceUnavailable, not_found
from billing.ids import new_id
from billing.observability import logger, metrics
from billing.pagination import page
from billing.schemas.features import FeatureCreate, FeatureFilter, FeatureUpdate, feature_out
from billing.schemas.meters import filters_record
from billing.scope import Scope
from billing.services import backfill, meters
from billing.store import catalog
from billing.store.dynamo import ConditionFailed
from billing.store.entities import ACTIVE, ARCHIVED
from billing.timeutil import iso, utcnow

UNIQUE_FIELD = "lookup_key"
MAX_ID_LENGTH = 255
ARCHIVE_ATTEMPTS = 3


def create(scope: Scope, request: FeatureCreate, actor: str = "api") -> dict[str, Any]:
    """Create a feature; a metered one with its new meter (same transaction) or an existing one."""
    now = iso(utcnow())
    meter: dict[str, Any] | None = None
    extra_ops: list[dict[str, Any]] = []
    if request.meter is not None:
        meter = meters.new_record(scope, request.meter, request.name, now)
        extra_ops = meters.create_ops(scope, meter)
    elif request.meter_id is not None:
        meter = meters.usable(scope, request.meter_id)
        extra_ops = meters.reference_ops(scope, request.meter_id)
    record: dict[str, Any] = {
        "id": new_id("feature"),
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "name": request.name,
        "type": request.type,
        "lookup_key": request.lookup_key,
        "description": request.description,
        "meter_id": meter["id"] if meter else None,
        "metadata": request.metadata or {},
        "unit_singular": request.unit_singular,
        "unit_plural": request.unit_plural,
        "status": ACTIVE,
        "created_at": now,
        "updated_at": now,
        "created_by": actor,
        "updated_by": actor,
        "version": 1,
    }
    unique = {UNIQUE_FIELD: request.lookup_key} if request.lookup_key else None
    try:
        created = catalog.features().create(scope, record, unique=unique, extra_ops=extra_ops)
    except ConditionFailed:
        # Claims map to AlreadyExists in the repository; what is left is the meter's condition check.
        if request.meter_id is None:
            raise
        raise InvalidOperation(
            f"meter {request.meter_id} was archived while the feature was being created",
            {"entity": "meter", "id": request.meter_id, "field": "meter_id"},
        ) from None
    metrics.add_metric(name="FeatureCreated", unit="Count", value=1)
    if request.meter is not None and meter is not None:
        _request_backfill(scope, meter["id"])
    return {**created, "meter": meter}


def _request_backfill(scope: Scope, meter_id: str) -> None:
    """The feature and meter are stored; a failed back-fill request must not turn that into an error (a
    client retrying the create would make a second feature). It is logged and counted for an operator."""
    try:
        backfill.request(scope, meter_id)
    except Exception:
        logger.exception("meter back-fill request failed", extra={"meter_id": meter_id})
        metrics.add_metric(name="MeterBackfillRequestFailed", unit="Count", value=1)


def _find(scope: Scope, feature_id: str) -> dict[str, Any]:
    found = catalog.features().find(scope, feature_id) if 0 < len(feature_id) <= MAX_ID_LENGTH else None
    if found is None:
        raise not_found("feature", feature_id)
    return found


def get(scope: Scope, feature_id: str) -> dict[str, Any]:
    """A feature with its meter expanded (``meter`` is ``None`` for features without one)."""
    feature = _find(scope, feature_id)
    meter_id = feature.get("meter_id")
    return {**feature, "meter": meters.find(scope, meter_id) if meter_id else None}


def search(scope: Scope, criteria: FeatureFilter) -> list[dict[str, Any]]:
    return criteria.arrange([f for f in catalog.features().list(scope) if criteria.keep(f)])


def list_page(scope: Scope, criteria: FeatureFilter) -> dict[str, Any]:
    """``ListFeaturesResponse``: one page, each feature with its meter (one batch read per page)."""
    found = search(scope, criteria)
    window = found[criteria.offset : criteria.offset + criteria.limit]
    by_id = meters.get_many(scope, [f["meter_id"] for f in window if f.get("meter_id")])

    def render(feature: dict[str, Any]) -> dict[str, Any]:
        return feature_out({**feature, "meter": by_id.get(feature.get("meter_id") or "")})

    return page(found, criteria.limit, criteria.offset, render)


def _refuse_fixed_changes(current: dict[str, Any], request: FeatureUpdate, meter: dict[str, Any] | None) -> None:
    """Type and meter are fixed at creation (meters are immutable); an unchanged echo is accepted."""
    if request.type is not None and request.type != current.get("type"):
        raise InvalidOperation(f"a feature's type cannot change (it is {current.get('type')})", {"field": "type"})
    if request.meter_id is not None and request.meter_id != (current.get("meter_id") or ""):
        raise InvalidOperation("a feature's meter cannot change", {"field": "meter_id"})
    if request.meter is not None and request.meter.get("id") != current.get("meter_id"):
        raise InvalidOperation("a feature's meter cannot change; meters are immutable", {"field": "meter"})
    if request.filters is not None:
        current_filters = (meter or {}).get("filters") or []
        if filters_record(request.filters) != current_filters:
            raise InvalidOperation(
                "a meter's filters cannot change after creation; meters are immutable", {"field": "filters"}
            )


def update(scope: Scope, feature_id: str, request: FeatureUpdate, actor: str = "api") -> dict[str, Any]:
    current = get(scope, feature_id)
    meter = current.pop("meter")
    if current.get("status") != ACTIVE:
        raise NotFound(f"feature {feature_id} is archived", {"entity": "feature", "id": feature_id})
    _refuse_fixed_changes(current, request, meter)
    changes = request.model_dump(
        exclude_unset=True, include={"name", "description", "metadata", "unit_singular", "unit_plural"}
    )
    if "name" in changes and changes["name"] is None:
        del changes["name"]
    record = {**current, **changes, "updated_at": iso(utcnow()), "updated_by": actor}
    if bool(record.get("unit_singular")) != bool(record.get("unit_plural")):
        raise InvalidOperation("unit_singular and unit_plural must be set together", {"field": "unit_plural"})
    record["metadata"] = record.get("metadata") or {}
    record["version"] = int(current["version"]) + 1
    updated = catalog.features().replace(scope, record, int(current["version"]))
    return {**updated, "meter": meter}


def archive(scope: Scope, feature_id: str, actor: str = "api") -> dict[str, Any]:
    """Archive a feature, free its lookup key, and archive its meter when no other feature uses it."""
    repo = catalog.features()
    for _ in range(ARCHIVE_ATTEMPTS):
        current = _find(scope, feature_id)
        if current.get("status") == ARCHIVED:
            return current
        now = iso(utcnow())
        version = int(current["version"])
        record = {**current, "status": ARCHIVED, "updated_at": now, "updated_by": actor}
        record["version"] = version + 1
        extra = []
        if current.get("lookup_key"):
            extra.append(repo.release_op(scope, UNIQUE_FIELD, current["lookup_key"], current["id"]))
        meter_id = current.get("meter_id")
        if not meter_id:
            archived = repo.replace(scope, record, version, extra_ops=extra)
            break
        # First as the meter's last user (the meter is archived too), then as one of several.
        for last in (True, False):
            try:
                archived = repo.replace(
                    scope,
                    record,
                    version,
                    extra_ops=[*extra, *meters.release_ops(scope, meter_id, now, last=last)],
                )
            except ConditionFailed:
                continue
            break
        else:
            continue  # the meter's other users changed meanwhile: read again
        break
    else:
        raise ServiceUnavailable(
            f"feature {feature_id} changed concurrently while being archived; retry", {"retry_after": 1}
        )
    metrics.add_metric(name="FeatureArchived", unit="Count", value=1)
    return archived
