"""Event ingestion (single and bulk), raw event queries and lookup.

An event is stored and counted in one transaction: the event item is put only if its id was never stored
(``attribute_not_exists(PK)``, forever), together with the counter updates it causes. See docs/metering.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from billing import wiring
from billing.domain import metering as m
from billing.errors import NotFound, ValidationFailed
from billing.ids import new_id
from billing.observability import logger, metrics
from billing.schemas.events import EventsQuery, IngestEvent
from billing.scope import Scope
from billing.services import meters as meter_service
from billing.settings import get_settings
from billing.store.counters import Counters, Entry, pack
from billing.store.dynamo import Table
from billing.timeutil import parse_iso

FUTURE_TOLERANCE = timedelta(minutes=5)
DEFAULT_QUERY_RANGE = timedelta(days=7)
MAX_EXAMINED = 5000
WRITERS = 8
EVENT_SK = "e"


# -- keys ------------------------------------------------------------------------------------------
def event_pk(scope: Scope, event_id: str) -> str:
    return f"{scope.prefix}#evt#{event_id}"


def name_index_pk(scope: Scope, event_name: str) -> str:
    return f"{scope.prefix}#evname#{event_name}"


def customer_index_pk(scope: Scope, customer: str) -> str:
    return f"{scope.prefix}#evcust#{customer}"


def stamp(at: datetime) -> str:
    """Fixed-width RFC 3339 with milliseconds: sorts as time."""
    return f"{at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}Z"


# -- meters of an event name -----------------------------------------------------------------------
_meter_cache: dict[tuple[str, str], tuple[float, list[m.Meter]]] = {}


def lookup_meters(scope: Scope, event_name: str) -> list[m.Meter]:
    """Published meters of an event name, read now (one Query on the entities table's GSI1)."""
    meters = [m.Meter.from_record(r) for r in meter_service.meters_for_event(scope, event_name)]
    return [meter for meter in meters if meter.active and meter.event_name == event_name]


def meters_for_event(scope: Scope, event_name: str) -> list[m.Meter]:
    """The meters ingestion applies, reused for ``meter_cache_seconds`` (back-fill covers the gap)."""
    ttl = get_settings().meter_cache_seconds
    key = (scope.prefix, event_name)
    now = time.monotonic()
    hit = _meter_cache.get(key)
    if hit is not None and now - hit[0] < ttl:
        return hit[1]
    meters = lookup_meters(scope, event_name)
    if ttl > 0:
        _meter_cache[key] = (now, meters)
    return meters


def forget_meters() -> None:
    _meter_cache.clear()


# -- ingestion -------------------------------------------------------------------------------------
@dataclass
class Accepted:
    event_ids: list[str]
    stored: int
    duplicates: int


def _problem(field: str, message: str) -> dict[str, str]:
    return {"field": field, "message": message}


def _prepare(
    scope: Scope, events: Sequence[IngestEvent], now: datetime, prefix: str
) -> tuple[list[tuple[IngestEvent, str, datetime, list[m.Meter]]], list[dict[str, str]]]:
    prepared = []
    problems: list[dict[str, str]] = []
    for index, event in enumerate(events):
        where = prefix.format(index=index)
        at = m.truncate_ms(event.timestamp or now)
        if at > now + FUTURE_TOLERANCE:
            problems.append(_problem(f"{where}timestamp", "must not be more than 5 minutes in the future"))
            continue
        matched = [
            mt for mt in meters_for_event(scope, event.event_name) if m.matches(mt, event.event_name, event.properties)
        ]
        for meter in matched:
            try:
                m.metered_value(meter, event.properties)
            except m.FieldError as err:
                problems.append(_problem(f"{where}properties.{meter.field}", str(err)))
        prepared.append((event, event.event_id or new_id("event"), at, matched))
    return prepared, problems


def _entry(scope: Scope, event: IngestEvent, event_id: str, at: datetime, matched: list[m.Meter]) -> Entry:
    ts = stamp(at)
    item: dict[str, Any] = {
        "PK": event_pk(scope, event_id),
        "SK": EVENT_SK,
        "n": event.event_name,
        "c": event.external_customer_id,
        "t": ts,
        "GSI1PK": name_index_pk(scope, event.event_name),
        "GSI1SK": f"{ts}#{event_id}",
        "GSI2PK": customer_index_pk(scope, event.external_customer_id),
        "GSI2SK": f"{ts}#{event_id}",
    }
    if event.customer_id:
        item["ci"] = event.customer_id
    if event.source:
        item["s"] = event.source
    if event.properties:
        item["p"] = event.properties
    if matched:
        item["cf"] = {meter.id for meter in matched}
    table = wiring.events()
    entry = Entry(
        event_id=event_id,
        op=table.put_op(item, condition="attribute_not_exists(PK)"),
        at=at,
        meters={meter.id: meter for meter in matched},
        name=event.event_name,
    )
    at_ms = m.epoch_ms(at)
    for meter in matched:
        value = m.metered_value(meter, event.properties)
        for bucket in m.buckets_of(at):
            entry.cells[(meter.id, bucket)] = m.event_cell(meter, value, at_ms, event_id, bucket)
    return entry


def write_entries(table: Table, scope: Scope, by_customer: dict[str, list[Entry]]) -> int:
    """Commit entries in packed transactions; count the entries written."""
    return sum(write_entries_by_customer(table, scope, by_customer).values())


def write_entries_by_customer(table: Table, scope: Scope, by_customer: dict[str, list[Entry]]) -> dict[str, int]:
    """Commit entries in packed transactions; the entries written per customer.

    One customer's transactions share counter items (its month and day buckets at least), so they run one after
    the other; different customers' run side by side.
    """
    counters = Counters(table, scope)

    def customer_job(customer: str) -> int:
        return sum(len(counters.commit(customer, group)) for group in pack(by_customer[customer]))

    customers = list(by_customer)
    if len(customers) == 1:
        return {customers[0]: customer_job(customers[0])}
    with ThreadPoolExecutor(max_workers=min(WRITERS, len(customers))) as pool:
        return dict(zip(customers, pool.map(customer_job, customers), strict=True))


def ingest(scope: Scope, events: Sequence[IngestEvent], now: datetime, *, bulk: bool) -> Accepted:
    """Validate every event (all or nothing), then store and count the new ones exactly once."""
    prepared, problems = _prepare(scope, events, now, "events.{index}." if bulk else "")
    if problems:
        first = problems[0]
        raise ValidationFailed(f"invalid request: {first['field']}: {first['message']}", {"errors": problems})
    seen: set[str] = set()
    by_customer: dict[str, list[Entry]] = {}
    ids = []
    for event, event_id, at, matched in prepared:
        ids.append(event_id)
        if event_id in seen:
            continue  # the first occurrence in a bulk wins, like a re-send
        seen.add(event_id)
        by_customer.setdefault(event.external_customer_id, []).append(_entry(scope, event, event_id, at, matched))
    written = write_entries_by_customer(wiring.events(), scope, by_customer)
    for customer, count in written.items():
        if count:
            # One line per customer and request: the source of the usage dashboard's top customers (a Contributor
            # Insights rule on these log groups), instead of a metric per customer.
            logger.info("events accepted", extra={"external_customer_id": customer, "events": count})
    stored = sum(written.values())
    duplicates = len(ids) - stored
    metrics.add_metric(name="EventsIngested", unit="Count", value=stored)
    if duplicates:
        metrics.add_metric(name="EventsDuplicate", unit="Count", value=duplicates)
    return Accepted(ids, stored, duplicates)


# -- reads -----------------------------------------------------------------------------------------
def render(item: dict[str, Any], scope: Scope) -> dict[str, Any]:
    event_id = item["PK"][len(event_pk(scope, "")) :]
    return {
        "id": event_id,
        "event_name": item["n"],
        "external_customer_id": item["c"],
        "customer_id": item.get("ci", ""),
        "properties": item.get("p") or {},
        "source": item.get("s", ""),
        "timestamp": item["t"],
        "environment_id": scope.environment_id,
    }


def lookup(scope: Scope, event_id: str) -> dict[str, Any]:
    item = wiring.events().get(event_pk(scope, event_id), EVENT_SK)
    if item is None:
        raise NotFound(f"event {event_id} was not found", {"entity": "event", "id": event_id})
    return {
        "event": render(item, scope),
        "status": "processed",
        "counted_for_meters": sorted(item.get("cf") or ()),
    }


def _keep(item: dict[str, Any], query: EventsQuery) -> bool:
    if query.event_name and item["n"] != query.event_name:
        return False
    if query.external_customer_id and item["c"] != query.external_customer_id:
        return False
    if query.source and item.get("s") != query.source:
        return False
    properties = item.get("p") or {}
    for key, values in query.property_filters.items():
        if values and (key not in properties or m.property_text(properties[key]) not in values):
            return False
    return True


def _candidates(scope: Scope, query: EventsQuery, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
    table = wiring.events()
    if query.event_id:
        item = table.get(event_pk(scope, query.event_id), EVENT_SK)
        if item is not None and start <= m.truncate_ms(parse_iso(item["t"])) < end:
            item["GSI1SK"] = f"{item['t']}#{query.event_id}"
            yield item
        return
    if query.external_customer_id:
        index, pk = "GSI2", customer_index_pk(scope, query.external_customer_id)
    else:
        index, pk = "GSI1", name_index_pk(scope, query.event_name or "")
    lo, hi = stamp(start), stamp(end)
    asc = query.order == "asc"
    if query.iter_last_key:
        if asc:
            lo = max(lo, query.iter_last_key)
        else:
            hi = min(hi, query.iter_last_key)
    for item in table.query_pages(pk, index=index, sk_between=(lo, hi), forward=asc):
        key = item[f"{index}SK"]
        if key == query.iter_last_key or not key < stamp(end):
            continue
        item["GSI1SK"] = key
        yield item


def between(scope: Scope, customer: str, ranges: Sequence[tuple[datetime, datetime]]) -> list[dict[str, Any]]:
    """A customer's stored events in each ``[lo, hi)`` range (millisecond bounds), one Query per range on the
    customer index: the partial edge minutes of a usage query (each range is shorter than a minute)."""
    table = wiring.events()
    out: list[dict[str, Any]] = []
    pk = customer_index_pk(scope, customer)
    for lo, hi in ranges:
        top = stamp(hi)
        for item in table.query_pages(pk, index="GSI2", sk_between=(stamp(lo), top)):
            if item["GSI2SK"] < top:
                out.append(item)
    return out


def event_id_of(scope: Scope, item: dict[str, Any]) -> str:
    return str(item["PK"][len(event_pk(scope, "")) :])


def query(scope: Scope, request: EventsQuery, now: datetime) -> dict[str, Any]:
    end = request.end_time or now
    start = request.start_time or end - DEFAULT_QUERY_RANGE
    if start >= end:
        raise ValidationFailed("invalid request: start_time: must be before end_time")
    if request.sort == "event_name":
        return _query_by_name(scope, request, start, end)
    page: list[dict[str, Any]] = []
    skipped = examined = 0
    last_key = None
    has_more = False
    for item in _candidates(scope, request, start, end):
        examined += 1
        last_key = item["GSI1SK"]
        if _keep(item, request):
            if skipped < request.offset:
                skipped += 1
            elif len(page) < request.page_size:
                page.append(item)
            else:
                has_more = True
                break
        if examined >= MAX_EXAMINED:
            has_more = True
            break
    if page and not (has_more and examined >= MAX_EXAMINED):
        last_key = page[-1]["GSI1SK"]
    return {
        "events": [render(item, scope) for item in page],
        "has_more": has_more,
        "iter_first_key": page[0]["GSI1SK"] if page else "",
        "iter_last_key": last_key or "",
        "offset": request.offset,
        "total_count": len(page),
    }


def _query_by_name(scope: Scope, request: EventsQuery, start: datetime, end: datetime) -> dict[str, Any]:
    """``sort: event_name``: the matching events (at most ``MAX_EXAMINED`` examined) ordered by name, then time,
    both in ``order``; pages by ``offset`` (the iteration keys follow time, not names)."""
    kept: list[dict[str, Any]] = []
    examined = 0
    for item in _candidates(scope, request, start, end):
        examined += 1
        if _keep(item, request):
            kept.append(item)
        if examined >= MAX_EXAMINED:
            break
    kept.sort(key=lambda item: (item["n"], item["GSI1SK"]), reverse=request.order == "desc")
    page = kept[request.offset : request.offset + request.page_size]
    return {
        "events": [render(item, scope) for item in page],
        "has_more": len(kept) > request.offset + len(page) or examined >= MAX_EXAMINED,
        "iter_first_key": page[0]["GSI1SK"] if page else "",
        "iter_last_key": page[-1]["GSI1SK"] if page else "",
        "offset": request.offset,
        "total_count": len(page),
    }
