"""Pages of entities read in O(page): merged index partitions, opaque cursors, totals from counts.

Two ways to a page, both newest first by id (``order=asc`` oldest first):

- ``indexed_page``: the items come from one or more partitions whose sort key is the id (the state index ``GSI3``
  of ``store.tracking``, a customer's invoices on ``GSI1``...). Each partition is read lazily, a few items per
  Query, and the partitions are merged by id; reading stops once ``offset + limit + 1`` items have been kept. A
  page therefore reads about ``offset + limit`` items (plus what a residual filter drops), never the whole
  partition; the ``total`` is given by the caller (exact counts, ``tracking.counts``) or, when the caller has none
  for the filter, counted by reading the rest of the selection with a projection of the filtered attributes.
- ``selected_page``: the caller has already read the few records a selective filter names (ids, external ids, an
  email, a lookup key) and this filters, orders and slices them; the total is their number.

``offset`` is Flexprice's: a page at offset ``k`` reads ``k + limit`` items (the skipped ones are read and
dropped). A client that pages deeply passes the page's ``pagination.next_cursor`` back as ``cursor`` instead: the
next page then starts at the key after the last item returned and reads ``limit`` items, whatever its depth.
A cursor is tied to its filter: given with another filter it is refused (400).
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import itertools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from billing.errors import ValidationFailed
from billing.ids import PREFIXES
from billing.store import tracking
from billing.store.entities import strip_keys

MAX_REQUEST_ITEMS = 1000
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LOW, _HIGH = " ", "~"  # below and above every id character


@dataclass
class Page:
    items: list[dict[str, Any]]
    total: int
    next_cursor: str | None = None


@dataclass(frozen=True)
class Partition:
    """One Query-able partition whose sort key is the entity id."""

    pk: str
    index: str | None = None


@dataclass(frozen=True)
class Window:
    """What a list asks for: order, offset, limit, the cursor's last id, the id bounds of a time range."""

    limit: int
    offset: int = 0
    descending: bool = True
    after: str | None = None
    low: str = _LOW
    high: str = _HIGH
    fingerprint: str = ""
    projection: tuple[str, ...] = field(default=())


# -- cursors ----------------------------------------------------------------------------------------------------------
def fingerprint(criteria: Mapping[str, Any]) -> str:
    """A short digest of a filter (without limit, offset and cursor): a cursor is valid only for the same filter."""
    wanted = {k: v for k, v in criteria.items() if k not in ("limit", "offset", "cursor") and v is not None}
    text = json.dumps(wanted, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_cursor(last_id: str, print_: str) -> str:
    raw = json.dumps({"a": last_id, "f": print_}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, print_: str) -> str:
    def refuse(reason: str) -> ValidationFailed:
        return ValidationFailed(
            f"invalid request: cursor: {reason}",
            {"errors": [{"field": "cursor", "message": reason}]},
        )

    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        last, given = str(data["a"]), str(data["f"])
    except (ValueError, KeyError, TypeError):
        raise refuse("not a cursor this API returned") from None
    if given != print_:
        raise refuse("the cursor belongs to another filter; send the same filter with it")
    return last


# -- time ranges as id ranges ---------------------------------------------------------------------------------------
def _ulid_bound(at: datetime, high: bool) -> str:
    ms = max(0, int(at.timestamp() * 1000))
    value = (ms << 80) | ((1 << 80) - 1 if high else 0)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def id_bounds(kind: str, start: datetime | None, end: datetime | None) -> tuple[str, str]:
    """Id bounds holding every id minted in ``[start, end]`` (ids are ULIDs minted when the record is written, a few
    milliseconds after its ``created_at``: the upper bound has a second's margin; the exact filter runs on top)."""
    prefix = PREFIXES[kind] + "_"
    low = prefix + _ulid_bound(start, False) if start else _LOW
    high = prefix + _ulid_bound(end + timedelta(seconds=1), True) if end else _HIGH
    return low, high


def window(criteria: Any, kind: str, *, projection: tuple[str, ...] = ()) -> Window:
    """The window of a ``ListFilter`` (limit, offset, order, cursor, created-at range as ids when ids are minted at
    creation) for one listed kind."""
    print_ = fingerprint({**criteria.model_dump(mode="json"), "kind": kind})
    after = decode_cursor(criteria.cursor, print_) if criteria.cursor else None
    low, high = _LOW, _HIGH
    spec = tracking.tracked(kind)
    if spec is not None and spec.ids_by_creation and (criteria.start_time or criteria.end_time):
        low, high = id_bounds(kind, criteria.start_time, criteria.end_time)
    return Window(
        criteria.limit,
        criteria.offset,
        descending=criteria.order != "asc",
        after=after,
        low=low,
        high=high,
        fingerprint=print_,
        projection=projection,
    )


def has_time_range(criteria: Any) -> bool:
    return bool(criteria.start_time or criteria.end_time)


# -- reading ---------------------------------------------------------------------------------------------------------
def _stream(table: Any, part: Partition, window: Window, first: int, more: int) -> Iterator[dict[str, Any]]:
    """The partition's items in the window's order after the cursor, requested ``first`` then ``more`` at a time."""
    low, high = window.low, window.high
    if window.after is not None:
        if window.descending:
            high = min(high, window.after)
        else:
            low = max(low, window.after)
    if low > high:
        return
    start = None
    size = first
    while True:
        items, start = table.query_page(
            part.pk,
            index=part.index,
            sk_op="between",
            sk_values=[low, high],
            forward=not window.descending,
            limit=size,
            start_key=start,
            projection=window.projection,
        )
        for item in items:
            if item.get("id") != window.after:
                yield item
        if start is None:
            return
        size = more


def indexed_page(
    table: Any,
    partitions: Sequence[Partition],
    window: Window,
    *,
    total: int | None,
    keep: Callable[[dict[str, Any]], bool] | None = None,
) -> Page:
    """A page merged from id-ordered partitions; ``total`` None counts the selection (reads all of it)."""
    need = window.offset + window.limit + 1
    first = min(MAX_REQUEST_ITEMS, -(-need // max(1, len(partitions))) + 1)
    more = min(MAX_REQUEST_ITEMS, need)
    streams = [_stream(table, part, window, first, more) for part in partitions]
    key: Callable[[dict[str, Any]], str] = lambda item: str(item["id"])  # noqa: E731
    merged = heapq.merge(*streams, key=key, reverse=window.descending)
    kept: list[dict[str, Any]] = []
    seen = 0
    for item in merged:
        if keep is not None and not keep(item):
            continue
        seen += 1
        if len(kept) < need:
            kept.append(item)
        elif total is not None:
            break
    window_items = kept[window.offset : window.offset + window.limit]
    more_left = len(kept) > window.offset + window.limit
    if total is None:
        if window.after is None:
            total = seen
        else:  # the items before the cursor are part of the selection too
            whole = Window(window.limit, descending=window.descending, low=window.low, high=window.high)
            everything = [_stream(table, part, whole, MAX_REQUEST_ITEMS, MAX_REQUEST_ITEMS) for part in partitions]
            total = sum(1 for item in itertools.chain(*everything) if keep is None or keep(item))
    cursor = encode_cursor(str(window_items[-1]["id"]), window.fingerprint) if more_left and window_items else None
    return Page([strip_keys(i) for i in window_items], total, cursor)


def state_page(
    table: Any,
    scope: Any,
    kind: str,
    window: Window,
    *,
    states: Sequence[str] | None = None,
    dims: Sequence[str] = (tracking.ALL,),
    counted: bool = True,
    keep: Callable[[dict[str, Any]], bool] | None = None,
) -> Page:
    """A page of the state index: the kind's partitions of ``states`` (default: what a list shows unfiltered)
    merged by id; the total is the sum of the exact counts of those states in ``dims`` (values of one dimension,
    e.g. ``currency=usd``) when ``counted``, else counted by reading the selection."""
    spec = tracking.spec(kind)
    chosen = list(states) if states else list(spec.states or ("published",))
    total = None
    if counted:
        total = 0
        for dim in dims:
            per_state = tracking.counts(table, scope, kind, dim)
            total += sum(per_state.get(s, 0) for s in chosen)
    parts = [Partition(tracking.state_pk(scope, kind, s), tracking.STATE_INDEX) for s in chosen]
    return indexed_page(table, parts, window, total=total, keep=keep)


def selected_page(records: Sequence[Mapping[str, Any]], window: Window, keep: Callable[[dict[str, Any]], bool]) -> Page:
    """A page of records already read (a selective filter's few matches)."""
    chosen = sorted(
        (strip_keys(r) for r in records if window.low <= str(r["id"]) <= window.high),
        key=lambda r: str(r["id"]),
        reverse=window.descending,
    )
    chosen = [r for r in chosen if keep(r)]
    total = len(chosen)
    if window.after is not None:
        if window.descending:
            chosen = [r for r in chosen if str(r["id"]) < window.after]
        else:
            chosen = [r for r in chosen if str(r["id"]) > window.after]
    items = chosen[window.offset : window.offset + window.limit]
    more_left = len(chosen) > window.offset + window.limit
    cursor = encode_cursor(str(items[-1]["id"]), window.fingerprint) if more_left and items else None
    return Page(items, total, cursor)
