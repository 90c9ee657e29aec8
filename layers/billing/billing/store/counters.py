"""Usage counters on the events table, and the transaction that writes events together with them.

Item layout (``EventsTable``; ``<p>`` is ``<tenant>#<env>``, ``<c>`` the external customer id, ``<b>`` a bucket
key such as ``MI#202611252013``):

- ``PK=<p>#ctr#<c>``, ``SK=<b>``: one counter item per customer and bucket, for every meter at once:
  ``c#<meter>`` count, ``s#<meter>`` sum, ``w#<meter>`` Σ v·(t - bucket start) (ms), ``x#<meter>`` events
  whose metered property was unusable, ``n#<event_name>`` events of that name.
- ``PK=<p>#ext#<c>#<meter>``, ``SK=<b>``: MAX (``v``) or LATEST (``t``, ``i``, ``v``), written conditionally.
- ``PK=<p>#uniq#<c>#<meter>``, ``SK=<b>``: COUNT_UNIQUE value set ``u``.

One transaction holds N event writes plus ONE update per counter item they touch, carrying the summed
contributions of all N events. A failed condition cancels the transaction; the cancellation reasons say which
item failed: a failed event write is a duplicate (or an already counted back-fill) and is dropped with its
contributions; a failed MAX/LATEST update means the stored value already wins and is dropped. Then the rest is
retried. Conflicts with concurrent transactions are retried with backoff (by ``Table.transact`` when nothing else
failed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.domain import metering as m
from billing.errors import ServiceUnavailable
from billing.scope import Scope
from billing.store.dynamo import MAX_TRANSACT_ITEMS, ConditionFailed, Table, backoff

MAX_ATTEMPTS = 10
_EXPECTED_REASONS = {None, "None", "ConditionalCheckFailed", "TransactionConflict", "ThrottlingError"}
_MIN_KEY = "0" * 12


def counter_pk(scope: Scope, customer: str) -> str:
    return f"{scope.prefix}#ctr#{customer}"


def extrema_pk(scope: Scope, customer: str, meter_id: str) -> str:
    return f"{scope.prefix}#ext#{customer}#{meter_id}"


def unique_pk(scope: Scope, customer: str, meter_id: str) -> str:
    return f"{scope.prefix}#uniq#{customer}#{meter_id}"


@dataclass
class Entry:
    """One event's write and what it adds to the counters."""

    event_id: str
    op: dict[str, Any]
    at: datetime
    meters: dict[str, m.Meter] = field(default_factory=dict)
    cells: dict[tuple[str, m.Bucket], m.Cell] = field(default_factory=dict)
    name: str | None = None  # counted under n#<name> when set (ingestion, not back-fill)

    def counter_buckets(self) -> list[m.Bucket]:
        return m.buckets_of(self.at)

    def side_keys(self) -> set[tuple[str, str, m.Bucket]]:
        keys = set()
        for meter_id, bucket in self.cells:
            kind = self.meters[meter_id].aggregation
            if kind in m.EXTREMA:
                keys.add(("ext", meter_id, bucket))
            elif kind == m.COUNT_UNIQUE:
                keys.add(("uniq", meter_id, bucket))
        return keys


def pack(entries: Sequence[Entry], limit: int = MAX_TRANSACT_ITEMS) -> list[list[Entry]]:
    """Split one customer's entries into transactions of at most ``limit`` items, in time order."""
    groups: list[list[Entry]] = []
    current: list[Entry] = []
    buckets: set[m.Bucket] = set()
    side: set[tuple[str, str, m.Bucket]] = set()
    for entry in sorted(entries, key=lambda e: (e.at, e.event_id)):
        more_buckets = buckets | set(entry.counter_buckets())
        more_side = side | entry.side_keys()
        if current and len(current) + 1 + len(more_buckets) + len(more_side) > limit:
            groups.append(current)
            current, more_buckets, more_side = [], set(entry.counter_buckets()), entry.side_keys()
        current.append(entry)
        buckets, side = more_buckets, more_side
    if current:
        groups.append(current)
    return groups


class Counters:
    def __init__(self, table: Table, scope: Scope) -> None:
        self.table = table
        self.scope = scope

    # -- writes ---------------------------------------------------------------------------------
    def _ops(
        self, customer: str, entries: Sequence[Entry], skip: set[tuple[str, str, m.Bucket]]
    ) -> tuple[list[dict[str, Any]], list[Any]]:
        ops: list[dict[str, Any]] = []
        owners: list[Any] = []
        for entry in entries:
            ops.append(entry.op)
            owners.append(entry)
        per_bucket: dict[m.Bucket, dict[str, m.Cell]] = {}
        names: dict[m.Bucket, dict[str, int]] = {}
        meters: dict[str, m.Meter] = {}
        for entry in entries:
            meters.update(entry.meters)
            for (meter_id, bucket), cell in entry.cells.items():
                cells = per_bucket.setdefault(bucket, {})
                cells[meter_id] = cells[meter_id].merge(cell) if meter_id in cells else cell
            if entry.name is not None:
                for bucket in entry.counter_buckets():
                    counts = names.setdefault(bucket, {})
                    counts[entry.name] = counts.get(entry.name, 0) + 1
        for bucket in sorted(set(per_bucket) | set(names)):
            op = self._counter_op(customer, bucket, meters, per_bucket.get(bucket, {}), names.get(bucket, {}))
            if op is not None:
                ops.append(op)
                owners.append(("ctr", bucket))
            for meter_id, cell in sorted(per_bucket.get(bucket, {}).items()):
                kind = meters[meter_id].aggregation
                side = None
                if kind in m.EXTREMA and ("ext", meter_id, bucket) not in skip:
                    side = self._extrema_op(customer, meter_id, kind, bucket, cell)
                    owner: Any = ("ext", meter_id, bucket)
                elif kind == m.COUNT_UNIQUE and cell.uniques:
                    side = self.table.update_op(
                        unique_pk(self.scope, customer, meter_id),
                        m.bucket_key(*bucket),
                        "ADD u :u",
                        values={":u": set(cell.uniques)},
                    )
                    owner = ("uniq", meter_id, bucket)
                if side is not None:
                    ops.append(side)
                    owners.append(owner)
        return ops, owners

    def _counter_op(
        self,
        customer: str,
        bucket: m.Bucket,
        meters: Mapping[str, m.Meter],
        cells: Mapping[str, m.Cell],
        names: Mapping[str, int],
    ) -> dict[str, Any] | None:
        parts: list[str] = []
        attr_names: dict[str, str] = {}
        values: dict[str, Any] = {}

        def add(attr: str, value: Any) -> None:
            index = len(parts)
            parts.append(f"#a{index} :v{index}")
            attr_names[f"#a{index}"] = attr
            values[f":v{index}"] = value

        for meter_id, cell in sorted(cells.items()):
            kind = meters[meter_id].aggregation
            if cell.count:
                add(f"c#{meter_id}", cell.count)
            if kind in m.SUMMED and cell.count:
                add(f"s#{meter_id}", cell.sum)
                if kind == m.WEIGHTED_SUM:
                    add(f"w#{meter_id}", cell.wsum)
            if cell.invalid:
                add(f"x#{meter_id}", cell.invalid)
        for name, count in sorted(names.items()):
            add(f"n#{name}", count)
        if not parts:
            return None
        return self.table.update_op(
            counter_pk(self.scope, customer),
            m.bucket_key(*bucket),
            "ADD " + ", ".join(parts),
            names=attr_names,
            values=values,
        )

    def _extrema_op(
        self, customer: str, meter_id: str, kind: str, bucket: m.Bucket, cell: m.Cell
    ) -> dict[str, Any] | None:
        pk, sk = extrema_pk(self.scope, customer, meter_id), m.bucket_key(*bucket)
        if kind == m.MAX:
            if cell.max is None:
                return None
            return self.table.update_op(
                pk, sk, "SET v = :v", condition="attribute_not_exists(v) OR v < :v", values={":v": cell.max}
            )
        if cell.latest is None:
            return None
        at, event_id, value = cell.latest
        return self.table.update_op(
            pk,
            sk,
            "SET t = :t, i = :i, v = :v",
            condition="attribute_not_exists(t) OR t < :t OR (t = :t AND i < :i)",
            values={":t": at, ":i": event_id, ":v": value},
        )

    def commit(self, customer: str, entries: Sequence[Entry]) -> list[Entry]:
        """Write the entries and their counters atomically; return the entries that were written.

        Entries whose own write fails its condition (duplicates) are left out, with their contributions.
        """
        pending = list(entries)
        skip: set[tuple[str, str, m.Bucket]] = set()
        for attempt in range(MAX_ATTEMPTS):
            if not pending:
                return []
            ops, owners = self._ops(customer, pending, skip)
            try:
                self.table.transact(ops)
                return pending
            except ConditionFailed as failed:
                unexpected = set(failed.reasons) - _EXPECTED_REASONS
                if unexpected:
                    raise RuntimeError(f"usage transaction cancelled: {sorted(map(str, unexpected))}") from None
                dropped = {
                    id(owners[i])
                    for i, reason in enumerate(failed.reasons)
                    if reason == "ConditionalCheckFailed" and isinstance(owners[i], Entry)
                }
                for i, reason in enumerate(failed.reasons):
                    if reason == "ConditionalCheckFailed" and isinstance(owners[i], tuple):
                        skip.add(owners[i])
                pending = [e for e in pending if id(e) not in dropped]
                if {"TransactionConflict", "ThrottlingError"} & set(failed.reasons):
                    backoff(attempt)
            # A transaction cancelled only by conflicts or throttling is retried by ``Table.transact``; when that
            # persists, its 503/429 goes to the client as is (retrying it here too would multiply the waits).
        raise ServiceUnavailable("usage counters are busy; retry the request", {"retry_after": 1})

    # -- reads ----------------------------------------------------------------------------------
    def _read_runs(self, pk: str, buckets: Iterable[m.Bucket]) -> dict[m.Bucket, dict[str, Any]]:
        found: dict[m.Bucket, dict[str, Any]] = {}
        for resolution, first, last in m.runs(buckets):
            lo, hi = m.bucket_key(resolution, first), m.bucket_key(resolution, last)
            for item in self.table.query_pages(pk, sk_between=(lo, hi), consistent=True):
                found[m.parse_bucket_key(item["SK"])] = item
        return found

    def _read_months_before(self, pk: str, month: datetime) -> dict[m.Bucket, dict[str, Any]]:
        found: dict[m.Bucket, dict[str, Any]] = {}
        lo = f"{m.MONTH}#{_MIN_KEY}"
        hi = m.bucket_key(m.MONTH, month)
        for item in self.table.query_pages(pk, sk_between=(lo, hi), consistent=True):
            if item["SK"] != hi:
                found[m.parse_bucket_key(item["SK"])] = item
        return found

    def cells(
        self, customer: str, meter: m.Meter, buckets: Iterable[m.Bucket], months_before: datetime | None = None
    ) -> dict[m.Bucket, m.Cell]:
        """The meter's cells for the given buckets (plus every month before ``months_before``)."""
        wanted = list(buckets)
        pk = counter_pk(self.scope, customer)
        counters = self._read_runs(pk, wanted)
        if months_before is not None:
            counters.update(self._read_months_before(pk, months_before))
        side: dict[m.Bucket, dict[str, Any]] = {}
        if meter.aggregation in m.EXTREMA or meter.aggregation == m.COUNT_UNIQUE:
            side_pk = (extrema_pk if meter.aggregation in m.EXTREMA else unique_pk)(self.scope, customer, meter.id)
            side = self._read_runs(side_pk, wanted)
            if months_before is not None:
                side.update(self._read_months_before(side_pk, months_before))
        out: dict[m.Bucket, m.Cell] = {}
        for bucket in set(counters) | set(side):
            item = counters.get(bucket, {})
            extra = side.get(bucket, {})
            latest = None
            if "t" in extra:
                latest = (int(extra["t"]), str(extra["i"]), Decimal(extra["v"]))
            out[bucket] = m.Cell(
                count=int(item.get(f"c#{meter.id}", 0)),
                sum=Decimal(item.get(f"s#{meter.id}", 0)),
                wsum=Decimal(item.get(f"w#{meter.id}", 0)),
                invalid=int(item.get(f"x#{meter.id}", 0)),
                max=Decimal(extra["v"]) if meter.aggregation == m.MAX and "v" in extra else None,
                latest=latest,
                uniques=frozenset(extra.get("u") or ()),
            )
        return out

    def name_counts(self, customer: str, event_name: str, buckets: Iterable[m.Bucket]) -> dict[m.Bucket, m.Cell]:
        """COUNT of an event name (kept for every event, with or without meters)."""
        items = self._read_runs(counter_pk(self.scope, customer), buckets)
        return {b: m.Cell(count=int(i.get(f"n#{event_name}", 0))) for b, i in items.items()}
