"""Coupons: create, read, rename, archive, search; attach to a subscription (or one of its prices) and detach.

Records (entities table, ``store.catalog``):

- coupon ``PK=<p>#coupon``, ``SK=<coupon id>``: ``CouponResponse``'s fields; ``max_redemptions`` is absent when
  unlimited; ``total_redemptions`` counts associations made. ``PK=<p>#coupon#coupon_code``, ``SK=<code>`` claims a
  code (unique per environment; ``GET /coupons/code/{code}`` reads it).
- coupon association ``PK=<p>#coupon_association``, ``SK=<id>``: ``CouponAssociationResponse``'s fields plus a
  snapshot of the coupon's terms and ``first_sequence`` (below). The subscription record carries the same snapshot
  in ``coupon_associations``, so invoicing reads no coupon.

**Redemptions are counted exactly.** A redemption is an ``UpdateItem`` of the coupon (``total_redemptions + 1``)
conditioned on ``total_redemptions < max_redemptions`` (and the coupon being published), written in the same
transaction as the subscription (or its modification) and the association: two subscriptions racing for the last
redemption cannot both succeed, and a failed subscription redeems nothing.

**Which invoices a coupon applies to.** A subscription's invoices are numbered by sequence: its opening invoice
(ADVANCE charges, at creation) is 0, the invoice closing period ``k`` is ``k + 1``. A coupon attached at creation
starts with the first invoice the subscription will have (0 with an opening invoice, else 1); attached later, in
period ``k``, with the invoice closing period ``k`` (``k + 1``). ``once`` applies to that invoice, ``repeated`` to
``duration_in_periods`` invoices from it, ``forever`` to every one; an association's ``end_date`` stops it for
invoices of periods starting at or after that date. A fixed coupon applies only to invoices in its currency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing import wiring
from billing.domain.money import round_minor
from billing.errors import InvalidOperation, NotFound, VersionConflict, not_found
from billing.ids import new_id
from billing.observability import metrics
from billing.pagination import page
from billing.schemas.coupons import (
    MAX_COUPONS_PER_SUBSCRIPTION,
    CouponCreate,
    CouponFilter,
    CouponModify,
    CouponUpdate,
    SubscriptionCouponInput,
    coupon_out,
)
from billing.scope import Scope
from billing.store.entities import ACTIVE, ARCHIVED, Entities, entity_pk
from billing.timeutil import iso, parse_iso, utcnow

CODE = "coupon_code"
TERMS = ("name", "type", "cadence", "amount_off", "percentage_off", "currency", "duration_in_periods")


def coupons() -> Entities:
    return Entities(wiring.entities(), "coupon", "coupon")


def associations() -> Entities:
    return Entities(wiring.entities(), "coupon_association", "coupon association")


def create(scope: Scope, request: CouponCreate, actor: str = "api") -> dict[str, Any]:
    now = iso(utcnow())
    record: dict[str, Any] = {
        "id": new_id("coupon"),
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "name": request.name,
        "type": request.type,
        "cadence": request.cadence,
        "amount_off": (
            round_minor(request.amount_off, request.currency)
            if request.amount_off is not None and request.currency
            else None
        ),
        "percentage_off": request.percentage_off,
        "currency": request.currency,
        "duration_in_periods": request.duration_in_periods,
        "total_redemptions": 0,
        "redeem_after": iso(request.redeem_after) if request.redeem_after else None,
        "redeem_before": iso(request.redeem_before) if request.redeem_before else None,
        "coupon_code": request.coupon_code,
        "rules": None,
        "metadata": request.metadata or {},
        "status": ACTIVE,
        "created_at": now,
        "updated_at": now,
        "created_by": actor,
        "updated_by": actor,
        "version": 1,
    }
    if request.amount_off is not None and request.currency and record["amount_off"] != request.amount_off:
        raise InvalidOperation(
            f"amount_off has more decimals than {request.currency.upper()} allows", {"field": "amount_off"}
        )
    if request.max_redemptions is not None:
        record["max_redemptions"] = request.max_redemptions
    unique = {CODE: request.coupon_code} if request.coupon_code else None
    created = coupons().create(scope, record, unique=unique)
    metrics.add_metric(name="CouponCreated", unit="Count", value=1)
    return created


def get(scope: Scope, coupon_id: str) -> dict[str, Any]:
    return coupons().get(scope, coupon_id)


def by_code(scope: Scope, code: str) -> dict[str, Any]:
    found = coupons().lookup_unique(scope, CODE, code)
    if found is None:
        raise NotFound(f"coupon with code {code!r} was not found", {"entity": "coupon", "coupon_code": code})
    return get(scope, found)


def resolve(scope: Scope, code_or_id: str) -> dict[str, Any]:
    """A coupon by its code, else by its id (Flexprice's deprecated ``coupons`` field gives ids)."""
    found = coupons().lookup_unique(scope, CODE, code_or_id) or code_or_id
    coupon = coupons().find(scope, found)
    if coupon is None:
        raise not_found("coupon", code_or_id)
    return coupon


def update(scope: Scope, coupon_id: str, request: CouponUpdate, actor: str = "api") -> dict[str, Any]:
    for _ in range(5):
        current = coupons().get_active(scope, coupon_id)
        changes = request.model_dump(exclude_unset=True, exclude_none=True)
        record = {**current, **changes, "updated_at": iso(utcnow()), "updated_by": actor}
        record["version"] = int(current["version"]) + 1
        try:
            return coupons().replace(scope, record, int(current["version"]))
        except VersionConflict:  # a redemption moved the coupon on: read it again
            continue
    raise VersionConflict(f"coupon {coupon_id} is being redeemed right now; retry", {"id": coupon_id})


def archive(scope: Scope, coupon_id: str, actor: str = "api") -> dict[str, Any]:
    """Archive: no new redemptions; subscriptions that have it keep their discount."""
    for _ in range(5):
        current = coupons().get(scope, coupon_id)
        if current["status"] != ACTIVE:
            return current
        record = {**current, "status": ARCHIVED, "updated_at": iso(utcnow()), "updated_by": actor}
        record["version"] = int(current["version"]) + 1
        extra = []
        if current.get("coupon_code"):
            extra.append(coupons().release_op(scope, CODE, current["coupon_code"], coupon_id))
        try:
            return coupons().replace(scope, record, int(current["version"]), extra_ops=extra)
        except VersionConflict:
            continue
    raise VersionConflict(f"coupon {coupon_id} is being redeemed right now; retry", {"id": coupon_id})


def list_page(scope: Scope, criteria: CouponFilter) -> dict[str, Any]:
    records = criteria.arrange([c for c in coupons().list(scope) if criteria.keep(c)])
    return page(records, criteria.limit, criteria.offset, coupon_out)


def get_association(scope: Scope, association_id: str) -> dict[str, Any]:
    found = associations().get(scope, association_id)
    return {**found, "coupon": coupons().find(scope, found["coupon_id"])}


# -- redemption ------------------------------------------------------------------------------------------------


def redeem_op(scope: Scope, coupon_id: str, now: str) -> dict[str, Any]:
    """One redemption: fails (the transaction with it) when the coupon is used up or no longer published."""
    return wiring.entities().update_op(
        entity_pk(scope, "coupon"),
        coupon_id,
        "SET total_redemptions = total_redemptions + :one, version = version + :one, updated_at = :t",
        condition=(
            "attribute_exists(PK) AND #s = :pub "
            "AND (attribute_not_exists(max_redemptions) OR total_redemptions < max_redemptions)"
        ),
        names={"#s": "status"},
        values={":one": 1, ":pub": ACTIVE, ":t": now},
    )


def _usable(coupon: Mapping[str, Any], currency: str, at: datetime) -> None:
    cid = coupon["id"]
    if coupon.get("status") != ACTIVE:
        raise InvalidOperation(f"coupon {cid} is archived", {"coupon_id": cid})
    if coupon.get("redeem_after") and at < parse_iso(coupon["redeem_after"]):
        raise InvalidOperation(f"coupon {cid} cannot be redeemed before {coupon['redeem_after']}", {"coupon_id": cid})
    if coupon.get("redeem_before") and at >= parse_iso(coupon["redeem_before"]):
        raise InvalidOperation(f"coupon {cid} could be redeemed until {coupon['redeem_before']}", {"coupon_id": cid})
    if coupon.get("max_redemptions") is not None and int(coupon["total_redemptions"]) >= int(coupon["max_redemptions"]):
        raise InvalidOperation(f"coupon {cid} has reached its maximum redemptions", {"coupon_id": cid})
    if coupon["type"] == "fixed" and coupon.get("currency") != currency:
        raise InvalidOperation(
            f"coupon {cid} is in {str(coupon.get('currency')).upper()}, the subscription in {currency.upper()}",
            {"coupon_id": cid, "field": "currency"},
        )


def association(
    scope: Scope,
    sub: Mapping[str, Any],
    coupon: Mapping[str, Any],
    *,
    price_id: str | None,
    start: datetime | None,
    end: datetime | None,
    first_sequence: int,
    now: datetime,
    actor: str = "api",
) -> dict[str, Any]:
    """A new association record (validated), to be written with ``association_ops``."""
    _usable(coupon, sub["currency"], now)
    line_item_id = None
    if price_id is not None:
        line = next((i for i in sub["line_items"] if i["price"]["id"] == price_id), None)
        if line is None:
            raise InvalidOperation(
                f"price {price_id} is not one of the subscription's prices", {"field": "price_id", "price_id": price_id}
            )
        line_item_id = line["id"]
    stamp = iso(now)
    return {
        "id": new_id("coupon_association"),
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "coupon_id": coupon["id"],
        "subscription_id": sub["id"],
        "subscription_line_item_id": line_item_id,
        "price_id": price_id,
        "start_date": iso(start or now),
        "end_date": iso(end) if end else None,
        "first_sequence": first_sequence,
        "terms": {field: coupon.get(field) for field in TERMS},
        "metadata": {},
        "status": ACTIVE,
        "created_at": stamp,
        "updated_at": stamp,
        "created_by": actor,
        "updated_by": actor,
        "version": 1,
    }


def association_ops(scope: Scope, record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The redemption and the association's item, for the transaction that writes the subscription."""
    repo = associations()
    return [
        redeem_op(scope, record["coupon_id"], record["created_at"]),
        repo.table.put_op(repo.item(scope, record), condition="attribute_not_exists(PK)"),
    ]


def for_new_subscription(
    scope: Scope,
    sub: Mapping[str, Any],
    inputs: Sequence[SubscriptionCouponInput],
    ids: Sequence[str],
    line_ids: Mapping[str, Sequence[str]],
    *,
    first_sequence: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """The associations of a subscription being created (``subscription_coupons``, and the deprecated ``coupons``
    and ``line_item_coupons``)."""
    wanted: list[tuple[str, str | None, datetime | None, datetime | None]] = [
        (i.coupon_code, i.price_id, i.start_date, i.end_date) for i in inputs
    ]
    wanted += [(cid, None, None, None) for cid in ids]
    wanted += [(cid, price, None, None) for price, cids in line_ids.items() for cid in cids]
    if len(wanted) > MAX_COUPONS_PER_SUBSCRIPTION:
        raise InvalidOperation(
            f"a subscription takes at most {MAX_COUPONS_PER_SUBSCRIPTION} coupons", {"field": "subscription_coupons"}
        )
    out = []
    for code, price_id, start, end in wanted:
        coupon = resolve(scope, code)
        out.append(
            association(
                scope, sub, coupon, price_id=price_id, start=start, end=end, first_sequence=first_sequence, now=now
            )
        )
    return out


def snapshot(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the subscription record keeps of an association (all invoicing needs)."""
    keep = ("id", "coupon_id", "price_id", "subscription_line_item_id", "start_date", "end_date", "first_sequence")
    return {**{k: record.get(k) for k in keep}, "terms": dict(record["terms"]), "status": record["status"]}


def exhausted(reasons: Sequence[str | None], first_op: int, records: Sequence[Mapping[str, Any]]) -> str | None:
    """The coupon whose redemption failed in a cancelled transaction (its ops start at ``first_op``), if any."""
    for n, record in enumerate(records):
        position = first_op + 2 * n
        if position < len(reasons) and reasons[position] == "ConditionalCheckFailed":
            return str(record["coupon_id"])
    return None


def refused(coupon_id: str) -> InvalidOperation:
    return InvalidOperation(
        f"coupon {coupon_id} has reached its maximum redemptions (or was archived meanwhile)",
        {"coupon_id": coupon_id},
    )


# -- invoicing -------------------------------------------------------------------------------------------------


def discounts(sub: Mapping[str, Any], sequence: int, period_start: datetime) -> list[dict[str, Any]]:
    """The discount inputs (``services.adjustments``) of the subscription's invoice number ``sequence``."""
    out = []
    for item in sub.get("coupon_associations") or []:
        if item.get("status") != ACTIVE:
            continue
        terms = item["terms"]
        first = int(item["first_sequence"])
        if sequence < first:
            continue
        if terms["cadence"] == "once" and sequence != first:
            continue
        if terms["cadence"] == "repeated" and sequence >= first + int(terms["duration_in_periods"]):
            continue
        if item.get("end_date") and period_start >= parse_iso(item["end_date"]):
            continue
        if terms["type"] == "fixed" and terms.get("currency") != sub["currency"]:
            continue
        out.append(
            {
                "coupon_id": item["coupon_id"],
                "coupon_association_id": item["id"],
                "name": terms.get("name"),
                "type": terms["type"],
                "amount_off": _decimal(terms.get("amount_off")),
                "percentage_off": _decimal(terms.get("percentage_off")),
                "price_id": item.get("price_id"),
            }
        )
    return out


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def first_sequence_at_creation(has_opening_invoice: bool) -> int:
    return 0 if has_opening_invoice else 1


def modify(
    scope: Scope, sub: dict[str, Any], params: CouponModify, now: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
    """(the subscription changed, extra ops, the new association) for ``modify/execute`` with ``type: coupon``."""
    record = {**sub, "updated_at": iso(now), "version": int(sub["version"]) + 1}
    current = list(sub.get("coupon_associations") or [])
    if params.action == "remove":
        found = next((a for a in current if a["id"] == params.coupon_association_id), None)
        if found is None or found.get("status") != ACTIVE:
            raise not_found("coupon association", str(params.coupon_association_id))
        record["coupon_associations"] = [{**a, "status": ARCHIVED} if a is found else a for a in current]
        repo = associations()
        op = repo.table.update_op(
            entity_pk(scope, "coupon_association"),
            found["id"],
            "SET #s = :a, updated_at = :t, end_date = :t",
            names={"#s": "status"},
            values={":a": ARCHIVED, ":t": iso(now)},
        )
        return record, [op], None
    if sum(1 for a in current if a.get("status") == ACTIVE) >= MAX_COUPONS_PER_SUBSCRIPTION:
        raise InvalidOperation(f"a subscription takes at most {MAX_COUPONS_PER_SUBSCRIPTION} coupons")
    price_id = None
    if params.subscription_line_item_id:
        line = next((i for i in sub["line_items"] if i["id"] == params.subscription_line_item_id), None)
        if line is None:
            raise InvalidOperation(
                f"line item {params.subscription_line_item_id} is not the subscription's",
                {"field": "subscription_line_item_id"},
            )
        price_id = line["price"]["id"]
    coupon = resolve(scope, str(params.coupon_code))
    made = association(
        scope,
        sub,
        coupon,
        price_id=price_id,
        start=params.start_date,
        end=params.end_date,
        first_sequence=int(sub["current_period_index"]) + 1,
        now=now,
    )
    record["coupon_associations"] = [*current, snapshot(made)]
    return record, association_ops(scope, made), made
