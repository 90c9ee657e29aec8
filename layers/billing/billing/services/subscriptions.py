"""Subscriptions: create (with the opening invoice of ADVANCE charges), read, search, cancel, usage so far.

The stored record (``store.invoices`` documents the keys)::

    {id: "subs_<ULID>", tenant_id, environment_id, customer_id, external_customer_id, plan_id, currency,
     billing_period, billing_period_count, billing_cadence, billing_cycle, billing_anchor, start_date, timezone,
     current_period_index, current_period_start, current_period_end, invoiced_through,
     subscription_status, collection_method, payment_behavior, cancel_at_period_end, cancel_at, cancelled_at,
     last_period (the current period is the last one to invoice), line_items: [{id, price: <price snapshot>,
     display_name, plan_display_name}], lookup_key, metadata, status, created_at, updated_at, version}

Line items snapshot the plan's prices at creation, so a later price change never rewrites what a running
subscription bills.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.domain import pricing
from billing.domain.money import format_money
from billing.domain.periods import Schedule
from billing.errors import InvalidOperation, ServiceUnavailable, ValidationFailed
from billing.ids import new_id, ulid
from billing.observability import metrics
from billing.schemas.subscriptions import SubscriptionCancel, SubscriptionCreate, SubscriptionFilter
from billing.scope import Scope
from billing.services import customers, invoices, invoicing
from billing.services import prices as price_service
from billing.store import catalog
from billing.store import invoices as keys
from billing.store.dynamo import ConditionFailed, backoff
from billing.store.entities import ACTIVE
from billing.timeutil import iso, parse_iso

MAX_ATTEMPTS = 12


def _select_prices(scope: Scope, request: SubscriptionCreate) -> list[dict[str, Any]]:
    """The plan's active prices in the subscription's currency, period and period count."""
    chosen = [
        p
        for p in price_service.of_plan(scope, request.plan_id)
        if p["currency"] == request.currency
        and p["billing_period"] == request.billing_period
        and int(p["billing_period_count"]) == request.billing_period_count
    ]
    if not chosen:
        raise ValidationFailed(
            f"plan {request.plan_id} has no active price in {request.currency} billed every "
            f"{request.billing_period_count} {request.billing_period}",
            {"errors": [{"field": "currency", "message": "no plan price matches currency and billing period"}]},
        )
    return chosen


def create(scope: Scope, request: SubscriptionCreate, now: datetime, actor: str = "api") -> dict[str, Any]:
    customer = customers.resolve(scope, request.customer_id, request.external_customer_id)
    if customer.get("status") != ACTIVE:
        raise InvalidOperation(f"customer {customer['id']} is archived", {"customer_id": customer["id"]})
    plan = catalog.plans().get_active(scope, request.plan_id)
    chosen = _select_prices(scope, request)
    start = (request.start_date or now).replace(microsecond=0)
    tz = customer.get("timezone") or "UTC"
    schedule = Schedule.of(start, request.billing_period, request.billing_period_count, request.billing_cycle, tz)
    first = schedule.at_index(0)
    stamp = iso(now)
    sub_id = new_id("subscription")
    record: dict[str, Any] = {
        "id": sub_id,
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "customer_id": customer["id"],
        "external_customer_id": customer["external_id"],
        "plan_id": plan["id"],
        "currency": request.currency,
        "billing_period": request.billing_period,
        "billing_period_count": request.billing_period_count,
        "billing_cadence": "RECURRING",
        "billing_cycle": request.billing_cycle,
        "billing_anchor": iso(start),
        "start_date": iso(start),
        "timezone": tz,
        "current_period_index": 0,
        "current_period_start": iso(first.start),
        "current_period_end": iso(first.end),
        "subscription_status": "active",
        "collection_method": request.collection_method,
        "payment_behavior": request.payment_behavior,
        "cancel_at_period_end": False,
        "last_period": False,
        "lookup_key": request.lookup_key,
        "metadata": request.metadata or {},
        "line_items": [
            {
                "id": f"subs_line_{ulid()}",
                "price": price,
                "display_name": price.get("display_name"),
                "plan_display_name": plan.get("name"),
            }
            for price in chosen
        ],
        "status": ACTIVE,
        "created_at": stamp,
        "updated_at": stamp,
        "created_by": actor,
        "updated_by": actor,
        "version": 1,
    }
    for item in record["line_items"]:
        pricing.as_price(item["price"])  # a stored price that cannot be priced is refused here, not at period end
    repo = keys.subscriptions()
    indexes = invoicing.subscription_indexes(scope, record)
    opening = invoicing.opening_invoice(scope, record, now)
    for attempt in range(MAX_ATTEMPTS):
        extra: list[dict[str, Any]] = []
        finalized_opening: dict[str, Any] | None = None
        if opening is not None:
            counter = invoicing.read_counter(scope)
            finalized_opening, extra = invoicing.finalize_ops(
                scope, opening, counter, now, skip_zero=True, expect_absent=True
            )
        try:
            repo.create(scope, record, indexes=indexes, extra_ops=extra)
            break
        except ConditionFailed:
            # The invoice number moved under us (another invoice of this environment); read it again. (Conflicts
            # and throttling are retried by ``Table.transact``; when they persist, the 503/429 reaches the client.)
            backoff(attempt)
    else:
        raise ServiceUnavailable(
            "the subscription could not be created: too much contention; retry", {"retry_after": 1}
        )
    metrics.add_metric(name="SubscriptionCreated", unit="Count", value=1)
    opened = finalized_opening or {}
    if opened.get("invoice_status") == "FINALIZED" and Decimal(opened["total"]) > 0:
        invoices.queue_sync(scope, opened["id"])
    return record


def get(scope: Scope, subscription_id: str) -> dict[str, Any]:
    return keys.subscriptions().get(scope, subscription_id)


def search(scope: Scope, criteria: SubscriptionFilter) -> list[dict[str, Any]]:
    repo = keys.subscriptions()
    if criteria.customer_id:
        records = repo.list_by_index("GSI1", keys.customer_subscriptions_key(scope, criteria.customer_id))
    else:
        records = repo.list(scope)
    return criteria.arrange([r for r in records if criteria.keep(r)])


def cancel(scope: Scope, subscription_id: str, request: SubscriptionCancel, now: datetime) -> dict[str, Any]:
    """Cancel now (the period so far is invoiced at once, unless the policy is ``skip``) or at period end."""
    repo = keys.subscriptions()
    current = repo.get(scope, subscription_id)
    if current["subscription_status"] == "cancelled":
        raise InvalidOperation(f"subscription {subscription_id} is already cancelled", {"id": subscription_id})
    record = {**current, "updated_at": iso(now), "version": int(current["version"]) + 1}
    record["cancellation_reason"] = request.reason
    if request.cancellation_type == "end_of_period":
        record.update(cancel_at_period_end=True, cancel_at=current["current_period_end"], last_period=True)
    else:
        stamp = iso(now.replace(microsecond=0))
        record.update(subscription_status="cancelled", cancelled_at=stamp, cancel_at=stamp)
        if request.cancel_immediately_invoice_policy == "skip":
            record["last_period"] = False
        else:
            # The current period ends now; the invoicing run bills it (ARREAR charges only) and stops.
            record["last_period"] = True
            if parse_iso(current["current_period_start"]) < now:
                record["current_period_end"] = stamp
            else:
                record["last_period"] = False
    repo.replace(scope, record, int(current["version"]), indexes=invoicing.subscription_indexes(scope, record))
    metrics.add_metric(name="SubscriptionCancelled", unit="Count", value=1)
    return record


def usage(
    scope: Scope, subscription_id: str, start: datetime | None, end: datetime | None, now: datetime
) -> dict[str, Any]:
    """Per usage price: the quantity and amount so far in the current period (or the range asked)."""
    sub = get(scope, subscription_id)
    period = invoicing.current_period(sub)
    lo = start or period.start
    hi = end or min(now, period.end)
    if hi <= lo:
        raise ValidationFailed("start_time must be before end_time", {"field": "start_time"})
    meters = invoicing._meters(scope, sub)
    charges = []
    total = Decimal(0)
    for item in sub["line_items"]:
        price = item["price"]
        if price["type"] != "USAGE" or price["meter_id"] not in meters:
            continue
        meter = meters[price["meter_id"]]
        quantity = invoicing.meter_usage(scope, meter, sub["external_customer_id"], lo, hi)
        charge = pricing.price_quantity(price, quantity)
        total += charge.amount
        charges.append(
            {
                "subscription_line_item_id": item["id"],
                "meter_id": meter.id,
                "meter_display_name": meter.name or meter.event_name,
                "quantity": quantity,
                "amount": charge.amount,
                "display_amount": format_money(charge.amount, sub["currency"]),
                "currency": sub["currency"],
                "is_overage": False,
                "price": {"id": price["id"], "billing_model": price["billing_model"]},
            }
        )
    return {
        "start_time": iso(lo),
        "end_time": iso(hi),
        "amount": total,
        "display_amount": format_money(total, sub["currency"]),
        "currency": sub["currency"],
        "charges": charges,
    }
