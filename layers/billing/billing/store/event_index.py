"""The event index: compact pages of ``(time, event id)`` per customer and per event name, written by the counting
function (``billing.services.counting``) from the table's stream, never by ingestion.

Item layout (``EventsTable``; ``<p>`` is ``<tenant>#<env>``):

- ``PK=<p>#ixc#<customer>#<k>`` (by customer) or ``<p>#ixn#<event name>#<k>`` (by name), ``k`` in ``0..SHARDS-1``;
- ``SK=<YYYYMMDDHHMM>#<sequence number of its first entry>#<stream shard tag>``: one page holds events of ONE
  minute, from one batch of the stream;
- ``e``: list of ``<ms into the minute, 5 digits><event id>``, sorted; ``x``: the shards of the batch's other pages
  for that minute (first page only).

A batch's first page of a minute goes to shard 0; when one batch holds more than a page (``PAGE_BYTES``) for a
minute, its other pages go to shards 1..7 and the first page names them (``x``), so one busy customer's (or event
name's) pages spread over ``SHARDS`` partition keys while a reader of a quiet one makes one Query. Pages are
written before the counters of their batch and a redelivered batch writes them again: the same page key when the
batch is the same, another page when the batch was split differently, so readers drop repeated event ids.
Entries are only ids: readers fetch the event items themselves (``BatchGetItem``), which stay the one source of
what an event holds (``cf`` grows with a back-fill).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from billing.scope import Scope
from billing.store.dynamo import Table

SHARDS = 8
PAGE_BYTES = 8 * 1024  # a page is at most about 8 KB: 8 write units, whatever the batch
BY_CUSTOMER, BY_NAME = "ixc", "ixn"


def index_pk(scope: Scope, kind: str, key: str, shard: int) -> str:
    return f"{scope.prefix}#{kind}#{key}#{shard}"


def minute_key(at: datetime) -> str:
    return f"{at:%Y%m%d%H%M}"


def entry(at: datetime, event_id: str) -> str:
    return f"{at.second * 1000 + at.microsecond // 1000:05d}{event_id}"


def stamp_of(minute: str, offset: str) -> str:
    """``2026-10-10T10:10:10.123Z`` from ``202610101010`` and ``10123``."""
    return f"{minute[0:4]}-{minute[4:6]}-{minute[6:8]}T{minute[8:10]}:{minute[10:12]}:{offset[0:2]}.{offset[2:5]}Z"


def minute_of_stamp(stamp: str) -> str:
    return stamp[0:4] + stamp[5:7] + stamp[8:10] + stamp[11:13] + stamp[14:16]


def pages(entries: Iterable[tuple[str, str]], first_sequence: str, tag: str) -> list[tuple[int, str, dict[str, Any]]]:
    """Split one key's ``(minute, entry)`` pairs of one batch into pages: ``(shard, sort key, attributes)``.

    A minute's first page goes to shard 0; when the batch holds more than a page for that minute, the others go
    to shards 1..7 and the first page lists them (``x``), so a reader queries shard 0 and only the shards it
    names."""
    by_minute: dict[str, list[str]] = {}
    for minute, text in entries:
        by_minute.setdefault(minute, []).append(text)
    out = []
    for minute, texts in sorted(by_minute.items()):
        texts.sort()
        chunks: list[list[str]] = [[]]
        size = 0
        for text in texts:
            if chunks[-1] and size + len(text) + 1 > PAGE_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append(text)
            size += len(text) + 1
        base = f"{minute}#{first_sequence}#{tag}"
        offset = zlib.crc32(base.encode())
        shards = [0] + [1 + (offset + i) % (SHARDS - 1) for i in range(len(chunks) - 1)]
        for part, (shard, chunk) in enumerate(zip(shards, chunks, strict=True)):
            attributes: dict[str, Any] = {"e": chunk}
            if part == 0 and len(chunks) > 1:
                attributes["x"] = sorted(set(shards[1:]))
            out.append((shard, f"{base}#{part}", attributes))
    return out


def put_pages(table: Table, scope: Scope, kind: str, key: str, made: list[tuple[int, str, dict[str, Any]]]) -> int:
    """Write pages (plain puts: writing one again leaves it as it was); spilled pages first, so a reader that sees
    a first page finds the pages it names. Returns the number written."""
    for shard, sk, attributes in sorted(made, key=lambda page: page[0] == 0):
        table.put({"PK": index_pk(scope, kind, key, shard), "SK": sk, **attributes})
    return len(made)


def entries(
    table: Table, scope: Scope, kind: str, key: str, lo: str, hi: str, *, forward: bool = True
) -> Iterator[tuple[str, str]]:
    """``(stamp, event id)`` of the indexed events with ``lo <= stamp < hi`` (fixed-width RFC 3339 stamps), in
    time order (then id), each event once. Shard 0 is read lazily, minute by minute; a minute whose pages spilled
    to other shards reads those too (one Query each)."""
    lo_minute, hi_minute = minute_of_stamp(lo), minute_of_stamp(hi)
    first = table.query_pages(index_pk(scope, kind, key, 0), sk_between=(lo_minute, hi_minute + "~"), forward=forward)
    current: str | None = None
    held: dict[str, str] = {}
    spilled: set[int] = set()

    def flush() -> Iterator[tuple[str, str]]:
        if current is None:
            return
        for shard in sorted(spilled):
            for page in table.query_pages(index_pk(scope, kind, key, shard), sk_prefix=current + "#"):
                for text in page.get("e") or ():
                    held.setdefault(text[5:], stamp_of(current, text[:5]))
        ordered = sorted(((stamp, event_id) for event_id, stamp in held.items()), reverse=not forward)
        for stamp, event_id in ordered:
            if lo <= stamp < hi:
                yield stamp, event_id

    for page in first:
        minute = str(page["SK"])[:12]
        if minute != current:
            yield from flush()
            held, spilled, current = {}, set(), minute
        spilled.update(int(x) for x in page.get("x") or ())
        for text in page.get("e") or ():
            held.setdefault(text[5:], stamp_of(minute, text[:5]))
    yield from flush()
