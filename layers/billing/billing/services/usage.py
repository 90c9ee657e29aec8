"""Usage queries, answered from the pre-aggregated counters only (never from events)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from billing import wiring
from billing.domain import metering as m
from billing.errors import InvalidOperation, ValidationFailed
from billing.schemas.events import UsageByMeterQuery, UsageQuery
from billing.scope import Scope
from billing.services.events import between as events_between
from billing.services.events import event_id_of, lookup_meters
from billing.store import catalog
from billing.store.counters import Counters
from billing.timeutil import iso, parse_iso

DEFAULT_RANGE = timedelta(days=7)
MAX_WINDOWS = 10_000


def _customer(scope: Scope, external_id: str | None, customer_id: str | None) -> str:
    if external_id:
        return external_id
    customer = catalog.customers().get(scope, customer_id or "")
    return str(customer["external_id"])


def period(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """Bounds are kept to the millisecond (as event times are); the default end is the end of the current minute,
    the default start seven days before the end."""
    hi = m.truncate_ms(end) if end else m.floor_minute(now) + timedelta(minutes=1)
    lo = m.truncate_ms(start) if start else hi - DEFAULT_RANGE
    if lo >= hi:
        raise ValidationFailed(
            "invalid request: start_time: must be before end_time",
            {"errors": [{"field": "start_time", "message": "must be before end_time"}]},
        )
    return lo, hi


def check_windows(window: str | None, start: datetime, end: datetime, anchor: datetime | None) -> None:
    if window and m.count_windows(window, start, end, anchor) > MAX_WINDOWS:
        raise ValidationFailed(
            f"invalid request: window_size: the range holds more than {MAX_WINDOWS} {window} windows",
            {"errors": [{"field": "window_size", "message": f"at most {MAX_WINDOWS} windows per query"}]},
        )


def compute(
    scope: Scope,
    customer: str,
    meter: m.Meter,
    start: datetime,
    end: datetime,
    window: str | None = None,
    anchor: datetime | None = None,
    *,
    by_name: bool = False,
) -> m.Usage:
    """Usage of one meter for one customer over ``[start, end)`` at millisecond bounds: whole minutes from the
    counters, the partial minutes at the two edges from the customer's events there (an index Query each)."""
    counters = Counters(wiring.events(), scope)
    needed = m.needed_buckets(start, end, window, anchor)
    history = meter.reset_never and not by_name
    ranges = m.edge_ranges(start, end, history=history)
    points = _points(scope, meter, events_between(scope, customer, ranges) if ranges else [], by_name=by_name)
    if by_name:
        cells = counters.name_counts(customer, meter.event_name, needed)
        return m.evaluate(meter, cells, start, end, window, anchor, points=points)
    carried = None
    if history:
        month, before = m.history_cover(m.floor_minute(start))
        cells = counters.cells(customer, meter, needed | set(before), months_before=month)
        carried = m.carried_before(cells, before, month, points, start)
    else:
        cells = counters.cells(customer, meter, needed)
    return m.evaluate(meter, cells, start, end, window, anchor, carried, points)


def _points(scope: Scope, meter: m.Meter, items: list[dict[str, Any]], *, by_name: bool) -> list[m.Point]:
    """What the stored events add to the meter, exactly as the counters hold them: an event counts for a meter
    when it was counted for it (``cf``); by event name, every event of the name counts."""
    out = []
    for item in items:
        if item["n"] != meter.event_name:
            continue
        found = m.point(
            meter,
            counted=by_name or meter.id in (item.get("cf") or ()),
            properties=item.get("p") or {},
            at_ms=m.epoch_ms(parse_iso(item["t"])),
            event_id=event_id_of(scope, item),
        )
        if found is not None:
            out.append(found)
    return out


def number_of(value: Decimal) -> Decimal:
    return value.normalize() if value == value.to_integral_value() else value


def render(usage: m.Usage, event_name: str, kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "event_name": event_name,
        "type": kind,
        "value": number_of(usage.value),
        "results": [{"window_size": iso(label), "value": number_of(value)} for label, value in usage.windows],
    }
    if usage.invalid_events:
        out["invalid_events"] = usage.invalid_events
    return out


def _check_query_filters(meter: m.Meter, filters: dict[str, list[str]]) -> None:
    """Counters hold what the meter's own filters select; a query may repeat them, not narrow them."""
    own = dict(meter.filters)
    for key, values in filters.items():
        if not values:
            continue
        if key not in own or not own[key] <= set(values):
            raise InvalidOperation(
                f"filter {key!r} narrows meter {meter.id}; usage is kept per meter, so create a meter with "
                "these filters (its history is back-filled)",
                {"field": f"filters.{key}"},
            )


def by_meter(scope: Scope, request: UsageByMeterQuery, now: datetime) -> dict[str, Any]:
    meter = m.Meter.from_record(catalog.meters().get(scope, request.meter_id))
    _check_query_filters(meter, request.filters)
    start, end = period(request.start_time, request.end_time, now)
    check_windows(request.window, start, end, request.billing_anchor)
    customer = _customer(scope, request.external_customer_id, request.customer_id)
    usage = compute(scope, customer, meter, start, end, request.window, request.billing_anchor)
    return render(usage, meter.event_name, meter.aggregation)


def _compatible(meter: m.Meter, request: UsageQuery) -> bool:
    wanted = request.aggregation_type
    if dict(meter.filters) != {k: frozenset(v) for k, v in request.filters.items() if v}:
        return False
    if wanted == m.COUNT:
        return True
    if meter.field != request.property_name:
        return False
    if wanted in (m.SUM, m.AVG, m.SUM_WITH_MULTIPLIER):
        return meter.aggregation in m.SUMMED
    return meter.aggregation == wanted


def by_event_name(scope: Scope, request: UsageQuery, now: datetime) -> dict[str, Any]:
    """Usage by event name and aggregation, read from the counters of a meter that keeps it."""
    start, end = period(request.start_time, request.end_time, now)
    check_windows(request.window, start, end, request.billing_anchor)
    kind = request.aggregation_type
    by_name = kind == m.COUNT and not any(request.filters.values())
    source: m.Meter | None = None
    if not by_name:
        candidates = [mt for mt in lookup_meters(scope, request.event_name) if _compatible(mt, request)]
        if not candidates:
            raise InvalidOperation(
                f"no meter of event {request.event_name!r} keeps {kind}"
                + (f" of {request.property_name!r}" if request.property_name else "")
                + " with these filters; create one (its history is back-filled)",
                {"event_name": request.event_name, "aggregation_type": kind},
            )
        source = sorted(candidates, key=lambda mt: mt.id)[0]
    meter = m.Meter(
        id=source.id if source else "",
        event_name=request.event_name,
        aggregation=kind,
        field=request.property_name,
        multiplier=request.multiplier,
    )
    customer = _customer(scope, request.external_customer_id, request.customer_id)
    usage = compute(scope, customer, meter, start, end, request.window, request.billing_anchor, by_name=by_name)
    return render(usage, request.event_name, kind)
