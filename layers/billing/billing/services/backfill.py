"""Back-fill: count a new meter's history from the stored events, exactly once, racing safely with ingestion.

Every event item records in ``cf`` the meters it was counted for. Ingestion writes the meters it applied; the
back-fill write for event e and meter m is conditional on ``NOT contains(cf, m)``, adds m, and carries the counter
updates in the same transaction. Whichever of the two counts e for m first, the other cannot.

Ingestion may reuse a meter list for ``meter_cache_seconds``, so a meter's back-fill is requested twice: at once
and again after that delay (SQS ``DelaySeconds``). Running it more often is harmless.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from billing import wiring
from billing.domain import metering as m
from billing.observability import logger, metrics
from billing.scope import Scope
from billing.services.events import EVENT_SK, event_pk, name_index_pk, write_entries
from billing.settings import get_settings
from billing.store import catalog
from billing.store.counters import Entry
from billing.timeutil import parse_iso

PAGE = 500
MAX_EVENTS_PER_MESSAGE = 20_000
MAX_DELAY_SECONDS = 900
_END = "~"


def delays() -> list[int]:
    """When the back-fill of a new meter runs: now, and once every ingestion cache has expired."""
    return [0, min(MAX_DELAY_SECONDS, get_settings().meter_cache_seconds + 60)]


def message(scope: Scope, meter_id: str, after: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "meter_id": meter_id,
    }
    if after:
        body["after"] = after
    return body


def request(scope: Scope, meter_id: str) -> bool:
    """Ask for a meter's back-fill (call it when a meter is created). False when no queue is configured."""
    url = get_settings().backfill_queue_url
    if not url:
        logger.warning("no back-fill queue configured", extra={"meter_id": meter_id})
        return False
    sqs = wiring.client("sqs")
    for delay in delays():
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(message(scope, meter_id)), DelaySeconds=delay)
    return True


def _continue(body: Mapping[str, Any], after: str) -> None:
    url = get_settings().backfill_queue_url
    if not url:
        raise RuntimeError("BACKFILL_QUEUE_URL is required to continue a back-fill")
    scope = Scope(str(body["tenant_id"]), str(body["environment_id"]))
    wiring.client("sqs").send_message(
        QueueUrl=url, MessageBody=json.dumps(message(scope, str(body["meter_id"]), after))
    )


def _entry(scope: Scope, meter: m.Meter, item: dict[str, Any]) -> Entry | None:
    if meter.id in (item.get("cf") or ()):
        return None
    properties = item.get("p") or {}
    if not m.matches(meter, item["n"], properties):
        return None
    event_id = item["PK"][len(event_pk(scope, "")) :]
    at = parse_iso(item["t"])
    table = wiring.events()
    entry = Entry(
        event_id=event_id,
        op=table.update_op(
            item["PK"],
            EVENT_SK,
            "ADD cf :m",
            condition="attribute_exists(PK) AND NOT contains(cf, :id)",
            values={":m": {meter.id}, ":id": meter.id},
        ),
        at=at,
        meters={meter.id: meter},
    )
    try:
        value = m.metered_value(meter, properties)
    except m.FieldError:
        # Stored before the meter existed and unusable for it: counted as invalid and reported by usage.
        for bucket in m.buckets_of(at):
            entry.cells[(meter.id, bucket)] = m.Cell(invalid=1)
        return entry
    at_ms = m.epoch_ms(at)
    for bucket in m.buckets_of(at):
        entry.cells[(meter.id, bucket)] = m.event_cell(meter, value, at_ms, event_id, bucket)
    return entry


def run(body: Mapping[str, Any], time_left_ms: Callable[[], int] | None = None) -> int:
    """Process one back-fill message; returns how many events were counted. Sends a continuation message
    (``after`` = last index key done) when the work does not fit in this invocation."""
    scope = Scope(str(body["tenant_id"]), str(body["environment_id"]))
    record = catalog.meters().find(scope, str(body["meter_id"]))
    if record is None:
        logger.warning("back-fill of an unknown meter ignored", extra={"meter_id": body["meter_id"]})
        return 0
    meter = m.Meter.from_record(record)
    if not meter.active:
        return 0
    table = wiring.events()
    lo = str(body.get("after") or "0")
    started = time.monotonic()
    counted = examined = 0
    batch: list[dict[str, Any]] = []
    last_key = lo

    def flush() -> int:
        by_customer: dict[str, list[Entry]] = {}
        for item in batch:
            entry = _entry(scope, meter, item)
            if entry is not None:
                by_customer.setdefault(item["c"], []).append(entry)
        batch.clear()
        return write_entries(table, scope, by_customer) if by_customer else 0

    for item in table.query_pages(name_index_pk(scope, meter.event_name), index="GSI1", sk_between=(lo, _END)):
        if item["GSI1SK"] == lo:
            continue
        batch.append(item)
        examined += 1
        if len(batch) >= PAGE:
            counted += flush()
            last_key = item["GSI1SK"]
            out_of_time = time_left_ms is not None and time_left_ms() < 15_000
            if examined >= MAX_EVENTS_PER_MESSAGE or out_of_time:
                _continue(body, last_key)
                break
    else:
        counted += flush()
    metrics.add_metric(name="EventsBackfilled", unit="Count", value=counted)
    logger.info(
        "back-fill done",
        extra={"meter_id": meter.id, "counted": counted, "examined": examined, "seconds": time.monotonic() - started},
    )
    return counted


__all__ = ["delays", "message", "request", "run"]
