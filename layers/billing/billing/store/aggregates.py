"""The dashboard's per-day aggregates, written in the transactions that change invoices, payments, subscriptions and
customers (registered with ``store.tracking``, so every write of those kinds carries them).

Items (``EntitiesTable``; ``<p>`` is ``<tenant>#<env>``):

- aggregate ``PK = <p>#agg``, ``SK = <bucket>#<row>#<shard>``: numbers added with ``ADD`` (``domain.aggregates``
  names them); ``<bucket>`` is ``D#YYYY-MM-DD``, ``M#YYYY-MM`` or ``Y#YYYY``, ``<row>`` a currency or ``-``. Each
  change adds to one of ``SHARDS`` shards picked at random, so two transactions rarely meet on one item (a meeting
  is a cancelled transaction that ``Table.transact`` retries); a figure is the sum of its shards.
- day pointer ``PK = <p>#aggday#<YYYY-MM-DD>``, ``SK = <kind>#<id>``: the records that contributed to a day, so a
  period that starts or ends inside a day reads that day's records exactly instead of its aggregate.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from billing.domain import aggregates as math
from billing.scope import Scope
from billing.store import tracking

SHARDS = 4
PAYMENT_PARTITIONS = ("payment", "stripe_payment")
# What the dashboard reads of a record (an invoice's line items are most of its size; they are not parsed). Every
# attribute ``domain.aggregates`` or ``services.dashboard`` reads must be here.
FIGURE_ATTRIBUTES = (
    "id",
    "currency",
    "status",
    "invoice_status",
    "payment_status",
    "created_at",
    "finalized_at",
    "total",
    "subtotal",
    "total_discount",
    "total_prepaid_credits_applied",
    "total_tax",
    "amount_paid",
    "amount_remaining",
    "amount",
    "refunded_amount",
    "disputed_amount",
    "succeeded_at",
    "failed_at",
    "start_date",
    "cancelled_at",
    "cancel_at",
    "cancel_at_period_end",
)


def agg_pk(scope: Scope) -> str:
    return f"{scope.prefix}#agg"


def day_pk(scope: Scope, day: str) -> str:
    return f"{scope.prefix}#aggday#{day}"


def ops_for(
    table: Any, scope: Scope, kind: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> list[Any]:
    """The aggregate and day-pointer writes of one change (``tracking.derive`` calls this)."""
    moved = math.delta(kind, before, after)
    if not moved:
        return []
    shard = random.randrange(SHARDS)
    ops = [table.add_op(agg_pk(scope), f"{bucket}#{row}#{shard}", figures) for (bucket, row), figures in moved.items()]
    record = after if after is not None else before
    assert record is not None
    new_days = math.days(kind, after) - math.days(kind, before)
    for day in sorted(new_days):
        ops.append(
            table.put_op({"PK": day_pk(scope, day), "SK": f"{kind}#{record['id']}", "kind": kind, "id": record["id"]})
        )
    return ops


def _deriver(kind: str) -> Any:
    def derived(
        table: Any, scope: Scope, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
    ) -> list[Any]:
        return ops_for(table, scope, kind, before, after)

    return derived


for _kind in math.CONTRIBUTORS:  # every write of these kinds carries its aggregates
    tracking.derive(_kind, _deriver(_kind))


def read_buckets(table: Any, scope: Scope, low: str, high: str) -> dict[tuple[str, str], dict[str, Decimal]]:
    """Aggregates whose sort key lies in ``[low, high]``, their shards summed: ``(bucket, row) -> figures``."""
    out: dict[tuple[str, str], dict[str, Decimal]] = {}
    start = None
    while True:
        items, start = table.query_page(
            agg_pk(scope), sk_op="between", sk_values=[low, high], start_key=start, consistent=True
        )
        for item in items:
            bucket_kind, bucket, row, _ = str(item["SK"]).split("#")
            slot = out.setdefault((f"{bucket_kind}#{bucket}", row), {})
            for name, value in item.items():
                if name not in ("PK", "SK"):
                    slot[name] = slot.get(name, Decimal(0)) + Decimal(value)
        if start is None:
            return out


def day_records(table: Any, scope: Scope, day: str) -> list[tuple[str, dict[str, Any]]]:
    """The records (kind, record) that contributed to one day: its pointers, then one batch read of the records."""
    pointers: list[dict[str, Any]] = []
    start = None
    while True:
        items, start = table.query_page(day_pk(scope, day), start_key=start, consistent=True)
        pointers.extend(items)
        if start is None:
            break
    keys: list[tuple[str, str]] = []
    for pointer in pointers:
        kind, entity_id = str(pointer["kind"]), str(pointer["id"])
        partitions = PAYMENT_PARTITIONS if kind == "payment" else (kind,)
        keys.extend((f"{scope.prefix}#{p}", entity_id) for p in partitions)
    found = []
    for item in table.batch_get(keys, projection=FIGURE_ATTRIBUTES):
        kind = "payment" if str(item["PK"]).endswith("#stripe_payment") else str(item["PK"]).rsplit("#", 1)[1]
        found.append((kind, item))
    return found
