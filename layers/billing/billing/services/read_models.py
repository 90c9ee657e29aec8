"""Backfill and repair of what lists and the dashboard read: recomputed from the records, compared, corrected.

The state index keys, the counts (``store.tracking``), the dashboard's aggregates and day pointers
(``store.aggregates``) are written in the same transactions as the records, so they never drift. Data written before
they existed has none of them; ``repair`` gives it (the backfill), and ``check`` proves they agree:

1. every record of every tracked kind is read, page by page (``dashboard.partition``), and its expected state index
   keys (and a customer's external-id and email index keys) are compared with the stored ones;
2. the expected counts and aggregates are summed from the records (the same functions the writes use) and compared
   with the stored sums (one Query per kind of counts, one for the aggregates);
3. ``fix=True`` writes the missing index keys (an ``UPDATE`` guarded by the record's version), the day pointers, and
   the difference of each count and aggregate on shard 0 (an ``ADD``), in batches of transactions.

Corrections are differences: run the repair while the environment is quiet (a change landing between the reads and
the correction would be corrected twice); ``check`` afterwards reports zero differences.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from billing import wiring
from billing.domain import aggregates as math
from billing.scope import Scope
from billing.services import customers, dashboard
from billing.store import aggregates, tracking
from billing.store.entities import strip_keys

PARTITIONS = {
    "customer": ("customer",),
    "feature": ("feature",),
    "plan": ("plan",),
    "price": ("price",),
    "subscription": ("subscription",),
    "invoice": ("invoice",),
    "payment": ("payment", "stripe_payment"),
}


@dataclass
class Report:
    records: int = 0
    index_fixes: list[tuple[str, str]] = field(default_factory=list)  # (pk, id) of items missing index keys
    count_diffs: dict[tuple[str, str, str], int] = field(
        default_factory=dict
    )  # (kind, dim, state) -> expected - stored
    aggregate_diffs: dict[tuple[str, str, str], Decimal] = field(default_factory=dict)  # (bucket, row, figure)
    fixed: bool = False

    @property
    def differences(self) -> int:
        return len(self.index_fixes) + len(self.count_diffs) + len(self.aggregate_diffs)

    def lines(self) -> Iterator[str]:
        yield f"records read: {self.records}"
        for pk, entity_id in self.index_fixes[:50]:
            yield f"index keys missing or stale: {pk} {entity_id}"
        for (kind, dim, state), n in sorted(self.count_diffs.items()):
            yield f"count {kind} {dim} {state}: expected - stored = {n:+d}"
        for (bucket, row, figure), amount in sorted(self.aggregate_diffs.items()):
            yield f"aggregate {bucket} {row} {figure}: expected - stored = {amount:+}"
        verb = "corrected" if self.fixed else "found"
        yield f"{self.differences} differences {verb}"


def _expected_keys(scope: Scope, kind: str, record: dict[str, Any]) -> dict[str, str]:
    keys = tracking.state_keys(scope, kind, record)
    if kind == "customer":
        keys.update(customers.indexes(scope, record))
    return keys


def _stored_counts(table: Any, scope: Scope, kind: str) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    start = None
    while True:
        items, start = table.query_page(tracking.count_pk(scope, kind), start_key=start, consistent=True)
        for item in items:
            dim, state, _ = str(item["SK"]).rsplit("#", 2)
            out[(dim, state)] += int(item.get("n") or 0)
        if start is None:
            return out


def run(scope: Scope, *, fix: bool = False) -> Report:
    table = wiring.entities()
    report = Report()
    expected_aggs: dict[tuple[str, str], dict[str, Decimal]] = {}
    pointers: set[tuple[str, str, str]] = set()
    updates: list[dict[str, Any]] = []
    for kind, partitions in PARTITIONS.items():
        expected: Counter[tuple[str, str]] = Counter()
        for partition in partitions:
            for item in dashboard.partition(scope, partition):
                report.records += 1
                record = strip_keys(item)
                expected.update(tracking.count_deltas(kind, None, record))
                for key, figures in math.contributions(kind, record).items():
                    slot = expected_aggs.setdefault(key, {})
                    for name, amount in figures.items():
                        slot[name] = slot.get(name, Decimal(0)) + amount
                pointers.update((day, kind, str(record["id"])) for day in math.days(kind, record))
                wanted = _expected_keys(scope, kind, record)
                if any(item.get(k) != v for k, v in wanted.items()):
                    report.index_fixes.append((str(item["PK"]), str(record["id"])))
                    sets = ", ".join(f"#k{n} = :k{n}" for n in range(len(wanted)))
                    updates.append(
                        table.update_op(
                            str(item["PK"]),
                            str(item["SK"]),
                            f"SET {sets}",
                            condition="attribute_exists(PK)",
                            names={f"#k{n}": k for n, k in enumerate(wanted)},
                            values={f":k{n}": v for n, v in enumerate(wanted.values())},
                        )
                    )
        stored = _stored_counts(table, scope, kind)
        for key in set(expected) | set(stored):
            if expected[key] != stored[key]:
                report.count_diffs[(kind, *key)] = expected[key] - stored[key]
    stored_aggs = aggregates.read_buckets(table, scope, " ", "~")
    for key in set(expected_aggs) | set(stored_aggs):
        want, have = expected_aggs.get(key, {}), stored_aggs.get(key, {})
        for name in set(want) | set(have):
            diff = want.get(name, Decimal(0)) - have.get(name, Decimal(0))
            if diff:
                report.aggregate_diffs[(*key, name)] = diff
    if fix:
        _apply(table, scope, report, updates, pointers)
    return report


def _apply(
    table: Any, scope: Scope, report: Report, updates: list[dict[str, Any]], pointers: set[tuple[str, str, str]]
) -> None:
    ops = list(updates)
    for (kind, dim, state), n in report.count_diffs.items():
        ops.append(table.add_op(tracking.count_pk(scope, kind), f"{dim}#{state}#0", {"n": n}))
    by_item: dict[tuple[str, str], dict[str, Decimal]] = {}
    for (bucket, row, name), amount in report.aggregate_diffs.items():
        by_item.setdefault((bucket, row), {})[name] = amount
    for (bucket, row), figures in by_item.items():
        ops.append(table.add_op(aggregates.agg_pk(scope), f"{bucket}#{row}#0", figures))
    for day, kind, entity_id in sorted(pointers):
        ops.append(
            table.put_op(
                {"PK": aggregates.day_pk(scope, day), "SK": f"{kind}#{entity_id}", "kind": kind, "id": entity_id}
            )
        )
    # Each correction stands alone (an index key, a difference, a pointer): applied one by one, not as a transaction.
    table.apply_each(ops)
    report.fixed = True
