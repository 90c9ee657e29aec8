"""What every write of a listed entity keeps beside it: its place in the state index and the exact counts.

A kind is *tracked* once it is registered here (``track``); from then on every write that goes through
``Entities`` (``create``, ``replace``, ``put_ops``) or builds its item with ``Entities.item``:

- puts the item in the **state index** (``GSI3``): ``GSI3PK = <p>#<kind>#state#<state>``, ``GSI3SK = <id>``, where
  ``<state>`` is the value of the kind's state field (``status`` for the catalog and customers,
  ``invoice_status``, ``subscription_status``, ``payment_status``). A page of one state is one Query of that
  partition, newest first, whatever else the environment holds;
- adjusts the **counts** in the same transaction: ``PK = <p>#count#<kind>``, ``SK = <dim>#<state>#<shard>``, ``n``
  (``ADD``), where ``<dim>`` is ``all`` or ``<field>=<value>`` of each counted dimension (``currency=usd``...).
  A count is the sum of its ``COUNT_SHARDS`` shards; each write adds to one shard picked at random, so concurrent
  creates rarely meet on one item (a transaction that does is cancelled and retried by ``Table.transact``). All of
  a kind's counts are one small partition: reading the counts of a list is one Query of a few tiny items;
- adds what ``store.aggregates`` derives for the dashboard (per-day, per-currency sums), in the same transaction.

A new kind (wallets, coupons...) gets all of this by registering: ``track("wallet", dims=("currency",))``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from billing.scope import Scope

STATE_INDEX = "GSI3"
COUNT_SHARDS = 4
ALL = "all"


@dataclass(frozen=True)
class Tracked:
    kind: str
    state: str = "status"
    dims: tuple[str, ...] = ()
    # Whether ids are ULIDs minted when the record is created (so a created-at range is an id range).
    ids_by_creation: bool = True
    # The states a list without a state filter shows (empty: only ``published``, the ``status`` kinds).
    states: tuple[str, ...] = ()


_REGISTRY: dict[str, Tracked] = {}
# Extra derived writes (the dashboard's aggregates) by kind: fn(scope, before, after) -> ops.
_DERIVERS: dict[str, list[Callable[[Any, Scope, Mapping[str, Any] | None, Mapping[str, Any] | None], list[Any]]]] = {}


def track(
    kind: str,
    state: str = "status",
    dims: tuple[str, ...] = (),
    *,
    ids_by_creation: bool = True,
    states: tuple[str, ...] = (),
) -> Tracked:
    spec = Tracked(kind, state, dims, ids_by_creation, states)
    _REGISTRY[kind] = spec
    return spec


def tracked(kind: str) -> Tracked | None:
    return _REGISTRY.get(kind)


def spec(kind: str) -> Tracked:
    return _REGISTRY[kind]


def derive(
    kind: str, fn: Callable[[Any, Scope, Mapping[str, Any] | None, Mapping[str, Any] | None], list[Any]]
) -> None:
    """Register a function adding writes to every change of ``kind`` (called with the table, scope, before, after)."""
    _DERIVERS.setdefault(kind, []).append(fn)


for _kind in ("customer", "feature", "plan", "price"):
    track(_kind)
track(
    "subscription",
    "subscription_status",
    ("currency",),
    states=("active", "paused", "cancelled", "incomplete", "trialing", "draft"),
)
track(
    "invoice",
    "invoice_status",
    ("currency", "payment_status"),
    ids_by_creation=False,
    states=("DRAFT", "FINALIZED", "VOIDED", "SKIPPED"),
)
# API payments (``<p>#payment``) and payments recorded from Stripe (``<p>#stripe_payment``) are one listed kind.
track(
    "payment",
    "payment_status",
    ("currency",),
    ids_by_creation=False,
    states=(
        "INITIATED",
        "PENDING",
        "PROCESSING",
        "SUCCEEDED",
        "OVERPAID",
        "FAILED",
        "REFUNDED",
        "PARTIALLY_REFUNDED",
        "VOIDED",
    ),
)


# -- the state index --------------------------------------------------------------------------------------------------
def state_pk(scope: Scope, kind: str, state: str) -> str:
    return f"{scope.prefix}#{kind}#state#{state}"


def state_keys(scope: Scope, kind: str, record: Mapping[str, Any]) -> dict[str, str]:
    spec = _REGISTRY.get(kind)
    if spec is None or record.get(spec.state) is None:
        return {}
    return {"GSI3PK": state_pk(scope, kind, str(record[spec.state])), "GSI3SK": str(record["id"])}


# -- counts -----------------------------------------------------------------------------------------------------------
def count_pk(scope: Scope, kind: str) -> str:
    return f"{scope.prefix}#count#{kind}"


def dim_key(field: str | None = None, value: Any = None) -> str:
    return ALL if field is None else f"{field}={value}"


def _count_keys(spec: Tracked, record: Mapping[str, Any] | None) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    if record is None or record.get(spec.state) is None:
        return out
    state = str(record[spec.state])
    out[(ALL, state)] += 1
    for field in spec.dims:
        if record.get(field) is not None:
            out[(dim_key(field, record[field]), state)] += 1
    return out


def count_deltas(kind: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[Any, int]:
    spec = _REGISTRY[kind]
    delta: Counter[tuple[str, str]] = Counter(_count_keys(spec, after))
    delta.subtract(_count_keys(spec, before))
    return {key: n for key, n in delta.items() if n}


def _count_ops(table: Any, scope: Scope, kind: str, deltas: Mapping[tuple[str, str], int]) -> list[Any]:
    shard = random.randrange(COUNT_SHARDS)  # one shard per change: its counts are as few items as dimensions
    return [
        table.add_op(count_pk(scope, kind), f"{dim}#{state}#{shard}", {"n": n})
        for (dim, state), n in sorted(deltas.items())
        if n
    ]


def count_ops(
    table: Any, scope: Scope, kind: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> list[Any]:
    return _count_ops(table, scope, kind, count_deltas(kind, before, after))


def derived_many(
    table: Any,
    scope: Scope,
    kind: str,
    changes: list[tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]],
) -> list[Any]:
    """``derived_ops`` of several changes of one kind in one transaction, their counts summed into one item each."""
    total: Counter[tuple[str, str]] = Counter()
    ops: list[Any] = []
    for before, after in changes:
        total.update(count_deltas(kind, before, after))
        for fn in _DERIVERS.get(kind, []):
            ops.extend(fn(table, scope, before, after))
    return [*_count_ops(table, scope, kind, total), *ops]


def derived_ops(
    table: Any, scope: Scope, kind: str, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> list[Any]:
    """Every write that keeps counts and aggregates exact when ``before`` becomes ``after`` (None: absent)."""
    if kind not in _REGISTRY:
        return []
    ops = count_ops(table, scope, kind, before, after)
    for fn in _DERIVERS.get(kind, []):
        ops.extend(fn(table, scope, before, after))
    return ops


def counts(table: Any, scope: Scope, kind: str, dim: str = ALL) -> dict[str, int]:
    """The exact number of ``kind`` entities per state (within one dimension value): one Query of tiny items."""
    out: Counter[str] = Counter()
    start = None
    while True:
        items, start = table.query_page(
            count_pk(scope, kind), sk_op="begins_with", sk_values=[f"{dim}#"], start_key=start, consistent=True
        )
        for item in items:
            state = str(item["SK"])[len(dim) + 1 :].rsplit("#", 1)[0]
            out[state] += int(item.get("n") or 0)
        if start is None:
            return dict(out)


# The dashboard's aggregates register themselves for their kinds (imported last: it registers through ``derive``).
from billing.store import aggregates as _aggregates  # noqa: E402,F401
