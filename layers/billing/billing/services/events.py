"""Event ingestion (single and bulk), raw event queries and lookup.

An event is stored by one conditional put: the event item is written only if its id was never stored
(``attribute_not_exists(PK)``, forever); 202 follows once it is. The counting function counts and indexes it from
the table's stream (``billing.services.counting``). Raw reads go through the event index's pages
(``billing.store.event_index``). See docs/metering.md.
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
from billing.store import event_index
from billing.store.counters import Counters, Entry, pack
from billing.store.dynamo import ConditionFailed, Table
from billing.timeutil import parse_iso

FUTURE_TOLERANCE = timedelta(minutes=5)
DEFAULT_QUERY_RANGE = timedelta(days=7)
MAX_EXAMINED = 5000
WRITERS = 16
EVENT_SK = "e"


# -- keys ------------------------------------------------------------------------------------------
def event_pk(scope: Scope, event_id: str) -> str:
    return f"{scope.prefix}#evt#{event_id}"


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


def _item(scope: Scope, event: IngestEvent, event_id: str, at: datetime, matched: list[m.Meter]) -> dict[str, Any]:
    """The event item: what was sent, and the meters it is counted for (``cf``). No index attributes: the counting
    function indexes and counts it from the table's stream."""
    item: dict[str, Any] = {
        "PK": event_pk(scope, event_id),
        "SK": EVENT_SK,
        "n": event.event_name,
        "c": event.external_customer_id,
        "t": stamp(at),
    }
    if event.customer_id:
        item["ci"] = event.customer_id
    if event.source:
        item["s"] = event.source
    if event.properties:
        item["p"] = event.properties
    if matched:
        item["cf"] = {meter.id for meter in matched}
    return item


def _store(table: Table, item: dict[str, Any]) -> bool:
    """Put the event item unless its id was ever stored (the permanent dedupe record). True when stored."""
    try:
        table.put(item, condition="attribute_not_exists(PK)")
    except ConditionFailed:
        return False
    return True


def store_items(table: Table, items: Sequence[dict[str, Any]]) -> tuple[list[bool], Exception | None]:
    """Store the items (``WRITERS`` at a time): which were new, and the first error of a write that failed for
    another reason than a duplicate (the request is then answered 503/429 and a re-send is safe)."""

    def attempt(item: dict[str, Any]) -> bool | Exception:
        try:
            return _store(table, item)
        except Exception as err:  # reported once every other write of the request has finished
            return err

    if len(items) == 1:
        outcomes = [attempt(items[0])]
    else:
        with ThreadPoolExecutor(max_workers=min(WRITERS, len(items))) as pool:
            outcomes = list(pool.map(attempt, items))
    failed = next((o for o in outcomes if isinstance(o, Exception)), None)
    return [o is True for o in outcomes], failed


def ingest(scope: Scope, events: Sequence[IngestEvent], now: datetime, *, bulk: bool) -> Accepted:
    """Validate every event (all or nothing), then store the new ones: each is one conditional put, counted
    exactly once later from the table's stream (``billing.services.counting``)."""
    prepared, problems = _prepare(scope, events, now, "events.{index}." if bulk else "")
    if problems:
        first = problems[0]
        raise ValidationFailed(f"invalid request: {first['field']}: {first['message']}", {"errors": problems})
    seen: set[str] = set()
    items: list[dict[str, Any]] = []
    ids = []
    for event, event_id, at, matched in prepared:
        ids.append(event_id)
        if event_id in seen:
            continue  # the first occurrence in a bulk wins, like a re-send
        seen.add(event_id)
        items.append(_item(scope, event, event_id, at, matched))
    stored_flags, failed = store_items(wiring.events(), items)
    written: dict[str, int] = {}
    for item, stored_one in zip(items, stored_flags, strict=True):
        if stored_one:
            written[item["c"]] = written.get(item["c"], 0) + 1
    for customer, count in written.items():
        # One line per customer and request: the source of the usage dashboard's top customers (a Contributor
        # Insights rule on these log groups), instead of a metric per customer.
        logger.info("events accepted", extra={"external_customer_id": customer, "events": count})
    stored = sum(written.values())
    # What was stored is counted even when the request then fails (its re-send finds those as duplicates), and
    # duplicates are the events found stored already or repeated in the request, never the ones left unwritten.
    metrics.add_metric(name="EventsIngested", unit="Count", value=stored)
    if failed is not None:
        raise failed
    duplicates = len(ids) - stored
    if duplicates:
        metrics.add_metric(name="EventsDuplicate", unit="Count", value=duplicates)
    return Accepted(ids, stored, duplicates)


def write_entries(table: Table, scope: Scope, by_customer: dict[str, list[Entry]]) -> int:
    """Commit back-fill entries (each with its event's update) in packed transactions; count the entries written.

    One customer's transactions share counter items (its month and day buckets at least), so they run one after
    the other; different customers' run side by side.
    """
    counters = Counters(table, scope)

    def customer_job(customer: str) -> int:
        return sum(len(counters.commit(customer, group)) for group in pack(by_customer[customer]))

    customers = list(by_customer)
    if len(customers) == 1:
        return customer_job(customers[0])
    with ThreadPoolExecutor(max_workers=min(WRITERS, len(customers))) as pool:
        return sum(pool.map(customer_job, customers))


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


def _fetch(scope: Scope, found: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The event items of index entries ``(stamp, event id)``, in the entries' order, each keyed ``<stamp>#<id>``."""
    items = wiring.events().batch_get([(event_pk(scope, event_id), EVENT_SK) for _, event_id in found])
    by_pk = {item["PK"]: item for item in items}
    out = []
    for at, event_id in found:
        item = by_pk.get(event_pk(scope, event_id))
        if item is not None:
            item["GSI1SK"] = f"{at}#{event_id}"
            out.append(item)
    return out


def indexed(
    scope: Scope, kind: str, key: str, lo: str, hi: str, *, forward: bool = True, after: str = ""
) -> Iterator[dict[str, Any]]:
    """Event items from the index (by customer or by name) with ``lo <= stamp < hi``, in time order, after the
    iteration key ``after`` (``<stamp>#<id>``) when given; fetched 100 at a time."""
    if after:
        if forward:
            lo = max(lo, after[:24])
        else:
            hi = min(hi, after[:24] + "~")
    chunk: list[tuple[str, str]] = []
    for at, event_id in event_index.entries(wiring.events(), scope, kind, key, lo, hi, forward=forward):
        if after:
            position = f"{at}#{event_id}"
            if (position <= after) if forward else (position >= after):
                continue
        chunk.append((at, event_id))
        if len(chunk) >= 100:
            yield from _fetch(scope, chunk)
            chunk = []
    if chunk:
        yield from _fetch(scope, chunk)


def _candidates(scope: Scope, query: EventsQuery, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
    table = wiring.events()
    if query.event_id:
        item = table.get(event_pk(scope, query.event_id), EVENT_SK)
        if item is not None and start <= m.truncate_ms(parse_iso(item["t"])) < end:
            item["GSI1SK"] = f"{item['t']}#{query.event_id}"
            yield item
        return
    if query.external_customer_id:
        kind, key = event_index.BY_CUSTOMER, query.external_customer_id
    else:
        kind, key = event_index.BY_NAME, query.event_name or ""
    yield from indexed(
        scope, kind, key, stamp(start), stamp(end), forward=query.order == "asc", after=query.iter_last_key or ""
    )


def between(scope: Scope, customer: str, ranges: Sequence[tuple[datetime, datetime]]) -> list[dict[str, Any]]:
    """A customer's counted events in each ``[lo, hi)`` range (millisecond bounds), read through the event index:
    the partial edge minutes of a usage query (each range is shorter than a minute)."""
    out: list[dict[str, Any]] = []
    for lo, hi in ranges:
        out.extend(indexed(scope, event_index.BY_CUSTOMER, customer, stamp(lo), stamp(hi)))
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
