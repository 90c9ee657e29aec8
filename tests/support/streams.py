"""The events table's stream in the test tiers: the template's counting mapping, delivered in-process.

After a call that ingests events, ``tests.support.api.call`` drains the stream (``drain``), as the local stack's
poller would within its batching window, so a test reads usage as it stands once counting caught up. Tests of the
asynchronous path itself turn that off (``manual``) and drain, or not, themselves.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from functools import cache
from typing import Any

from devstack import template as tpl
from devstack.events import LambdaContext
from devstack.loader import load_handler
from devstack.streams import StreamPoller, source_of

COUNTING_FUNCTION = "EventsCountFunction"
_pollers: dict[str, StreamPoller] = {}
_lock = threading.Lock()
_state = {"auto": True}


@cache
def _function(logical_id: str) -> tpl.Function:
    return tpl.functions(tpl.load())[logical_id]


def _invoke(logical_id: str, event: Any) -> Any:
    fn = _function(logical_id)
    return load_handler(fn.module_path, fn.attribute)(event, LambdaContext(logical_id))


def poller() -> StreamPoller:
    """The counting mapping of the stream the environment points at (one per embedded AWS)."""
    from billing import wiring

    arn = os.environ["EVENTS_STREAM_ARN"]
    with _lock:
        if arn not in _pollers:
            fn = _function(COUNTING_FUNCTION)
            ((name, event),) = [(n, e) for n, e in fn.events.items() if e.get("Type") == "DynamoDB"]
            source = source_of(COUNTING_FUNCTION, name, event["Properties"], arn)
            _pollers[arn] = StreamPoller(source, wiring.client("dynamodbstreams"), _invoke)
        return _pollers[arn]


def drain() -> int:
    """Count everything accepted so far; the number of stream records delivered."""
    return poller().drain()


def auto_drain() -> bool:
    return _state["auto"]


def set_auto(on: bool) -> None:
    """Whether ingestion calls drain the stream (the benchmarks run the poller's thread instead)."""
    _state["auto"] = on


@contextlib.contextmanager
def manual() -> Iterator[StreamPoller]:
    """Leave the stream alone after ingestion calls (the test drains it itself)."""
    _state["auto"] = False
    try:
        yield poller()
    finally:
        _state["auto"] = True
