"""Helpers of the metering tests: meters written as the features service writes them, ingestion and usage calls,
and a counter of DynamoDB items read."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from billing import wiring
from billing.ids import new_id
from billing.scope import Scope
from billing.services import events as event_service
from billing.store import catalog
from billing.timeutil import iso, utcnow
from devstack import dynamo_txn
from tests.support.api import Response, call

dynamo_txn.install()


def create_meter(
    tenant: tuple[str, str],
    event_name: str,
    aggregation: str = "COUNT",
    field: str | None = None,
    *,
    filters: dict[str, list[str]] | None = None,
    multiplier: str | None = None,
    reset_usage: str = "BILLING_PERIOD",
    forget_cache: bool = True,
) -> dict[str, Any]:
    scope = Scope(*tenant)
    now = iso(utcnow())
    record = {
        "id": new_id("meter"),
        "tenant_id": scope.tenant_id,
        "environment_id": scope.environment_id,
        "name": f"{event_name} {aggregation}",
        "event_name": event_name,
        "aggregation": {
            "type": aggregation,
            "field": field,
            "multiplier": Decimal(multiplier) if multiplier is not None else None,
        },
        "filters": [{"key": k, "values": v} for k, v in (filters or {}).items()],
        "reset_usage": reset_usage,
        "status": "published",
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    record["aggregation"] = {k: v for k, v in record["aggregation"].items() if v is not None}
    catalog.meters().create(
        scope,
        record,
        indexes={"GSI1PK": f"{scope.prefix}#meter_event#{event_name}", "GSI1SK": record["id"]},
    )
    if forget_cache:
        event_service.forget_meters()
    return record


def ingest(tenant: tuple[str, str], event: dict[str, Any]) -> Response:
    return call("POST", "/api/v1/events", tenant=tenant, body=event)


def bulk(tenant: tuple[str, str], events: list[dict[str, Any]]) -> Response:
    return call("POST", "/api/v1/events/bulk", tenant=tenant, body={"events": events})


def usage(tenant: tuple[str, str], meter_id: str, customer: str, start: str, end: str, **extra: Any) -> Response:
    body = {"meter_id": meter_id, "external_customer_id": customer, "start_time": start, "end_time": end, **extra}
    return call("POST", "/api/v1/events/usage/meter", tenant=tenant, body=body)


def number(value: Any) -> Decimal:
    return Decimal(str(value))


class ReadCounter:
    """Items DynamoDB returned to Query and GetItem calls of the product's client."""

    def __init__(self) -> None:
        self.items = 0
        self.requests = 0

    def __call__(self, parsed: dict[str, Any], **_: Any) -> None:
        self.requests += 1
        if "Items" in parsed:
            self.items += len(parsed["Items"])
        elif parsed.get("Item"):
            self.items += 1


@contextlib.contextmanager
def counting_reads() -> Iterator[ReadCounter]:
    counter = ReadCounter()
    events = wiring.client("dynamodb").meta.events
    handler = lambda parsed, **kw: counter(parsed, **kw)  # noqa: E731
    events.register("after-call.dynamodb.Query", handler)
    events.register("after-call.dynamodb.GetItem", handler)
    try:
        yield counter
    finally:
        events.unregister("after-call.dynamodb.Query", handler)
        events.unregister("after-call.dynamodb.GetItem", handler)
